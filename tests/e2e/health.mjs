// Watches the dashboard's upstream health in Debian's headless Chromium while the test takes
// an upstream away and brings it back: the live figures must turn it red with the reason,
// then green, without a reload.
//
// usage: node health.mjs BASE_URL EMAIL PASSWORD ARTIFACT_DIR
// Prints `ready` once the dashboard shows the upstream, `offline` once it shows it down (the
// test then brings it back), and last one JSON line with what it saw.
import { chromium } from 'playwright-core';

const [base, email, password, artifacts] = process.argv.slice(2);
const seen = {};
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const health = () => document.querySelector('[data-health]');
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(`${base}/admin/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/admin`);
  await page.waitForSelector('[data-live][data-updated]', { timeout: 15000 });
  seen.before = await page.locator('[data-health]').textContent();
  console.log('ready');
  // Red within 10 s, with the reason, without a reload.
  await page.waitForFunction(() => document.querySelector('[data-health]').textContent.startsWith('offline'), null, { timeout: 10000 });
  seen.offline_text = await page.locator('[data-health]').textContent();
  seen.offline_class = await page.locator('[data-health]').getAttribute('class');
  await page.screenshot({ path: `${artifacts}/dashboard-offline.png`, fullPage: true });
  console.log('offline');
  // Green again once it answers.
  await page.waitForFunction(() => document.querySelector('[data-health]').textContent === 'online', null, { timeout: 15000 });
  seen.online_class = await page.locator('[data-health]').getAttribute('class');
  seen.reloaded = false;
  await page.screenshot({ path: `${artifacts}/dashboard-online-again.png`, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
