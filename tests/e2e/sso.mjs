// Signs in to the gateway's console through an external identity provider in headless
// Chromium (Debian's, driven by playwright-core), as a person would: the sign-in page's
// provider button, the provider's own sign-in and consent pages, back to the console.
// usage: node sso.mjs LOGIN_PAGE_URL LOGIN_NAME
// Prints {"url", "title", "signed_in_as"} once the console's dashboard shows.
import { chromium } from "playwright-core";

const [start, login] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage();
try {
  page.setDefaultTimeout(30_000);
  await page.goto(start);
  await page.click("text=Sign in with");
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', "any password");
  await page.click('button[type="submit"]');
  await page.click('button:has-text("Continue")');
  await page.waitForURL((url) => url.pathname === "/admin");
  const body = await page.textContent("body");
  console.log(
    JSON.stringify({ url: page.url(), title: await page.title(), signed_in_as: body.includes(login) }),
  );
} catch (error) {
  // Where the browser got stuck, for the test's failure message.
  console.error(`stuck at ${page.url()}:\n${await page.content()}`);
  throw error;
} finally {
  await browser.close();
}
