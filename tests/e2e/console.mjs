// Drives the mcpgate console in Debian's headless Chromium with playwright-core.
//
// usage: node console.mjs BASE_URL EMAIL PASSWORD TOOL_URL ARTIFACT_DIR
// Prints one JSON line with what it saw; screenshots of each page go to ARTIFACT_DIR.
import { chromium } from 'playwright-core';

const [base, email, password, toolUrl, artifacts] = process.argv.slice(2);
const seen = {};
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  for (const [label, viewport] of [['desktop', { width: 1440, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
    const page = await browser.newPage({ viewport });
    // Not signed in: the console sends you to sign in.
    await page.goto(`${base}/admin`);
    seen[`${label}_redirected_to`] = new URL(page.url()).pathname;
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.screenshot({ path: `${artifacts}/login-${label}.png`, fullPage: true });
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/admin`);
    seen[`${label}_heading`] = await page.getByRole('heading', { level: 1 }).textContent();
    // The figures arrive over SSE without reloading.
    await page.waitForSelector('[data-live][data-updated]', { timeout: 15000 });
    seen[`${label}_tools_count`] = await page.locator('[data-figure="counts.tools"]').textContent();
    await page.screenshot({ path: `${artifacts}/dashboard-${label}.png`, fullPage: true });
    if (label === 'phone') {
      // Every page fits 390 px without scrolling sideways.
      seen.phone_overflow = [];
      for (const name of ['tools', 'resources', 'prompts', 'servers', 'gateways', 'tokens', 'teams', 'users', 'audit', 'account', 'logs', 'metrics', 'transfer']) {
        await page.goto(`${base}/admin/${name}`);
        if (await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)) seen.phone_overflow.push(name);
        await page.screenshot({ path: `${artifacts}/${name}-${label}.png`, fullPage: true });
      }
      await page.goto(`${base}/admin/servers`);
      await page.getByRole('link', { name: /^Connect a client to/ }).first().click();
      if (await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)) seen.phone_overflow.push('connect');
      await page.screenshot({ path: `${artifacts}/connect-${label}.png`, fullPage: true });
    }
    if (label === 'desktop') {
      await page.getByRole('link', { name: 'Tools' }).click();
      await page.getByLabel('Name', { exact: true }).fill('browser_weather');
      await page.getByLabel('URL').fill(toolUrl);
      await page.getByLabel('Method').selectOption('GET');
      await page.getByLabel('Description').fill('Created in the browser');
      // The argument builder writes the schema.
      await page.getByRole('button', { name: 'Add argument' }).click();
      await page.getByLabel('Argument 1 name').fill('city');
      await page.getByLabel('Argument 1 type').selectOption('string');
      await page.getByLabel('Argument 1 required').check();
      seen.built_schema = JSON.parse(await page.locator('#input_schema').inputValue());
      // A schema naming a required argument it does not define is caught before it is sent.
      await page.getByLabel('Input schema (JSON Schema)').fill('{"type": "object", "required": ["x"]}');
      await page.getByRole('button', { name: 'Create tool' }).click();
      seen.bad_schema_blocked = await page.locator('#input_schema').evaluate((el) => el.validationMessage);
      // A schema that is not JSON is caught before it is sent.
      await page.getByLabel('Input schema (JSON Schema)').fill('{not json');
      await page.getByRole('button', { name: 'Create tool' }).click();
      seen.invalid_json_blocked = await page.locator('#input_schema').evaluate((el) => !el.validity.valid);
      await page.getByLabel('Input schema (JSON Schema)').fill('{"type": "object", "properties": {"city": {"type": "string"}}}');
      await page.getByRole('button', { name: 'Create tool' }).click();
      await page.waitForSelector('.flash');
      seen.flash = await page.locator('.flash').textContent();
      seen.listed = await page.getByRole('cell', { name: 'browser_weather', exact: true }).count();
      await page.screenshot({ path: `${artifacts}/tools-${label}.png`, fullPage: true });
      // Test-run it: the form's inputs come from its schema.
      await page.getByRole('link', { name: 'Test-run browser_weather' }).click();
      await page.getByLabel('city').fill('Oslo');
      await page.getByRole('button', { name: 'Run' }).click();
      await page.waitForSelector('pre.result');
      seen.run_result = await page.locator('details pre.result').textContent();
      seen.run_text = await page.locator('pre.result').first().textContent();
      seen.run_elapsed = await page.locator('[data-elapsed]').textContent();
      // The same call as a curl command, with the arguments entered.
      await page.getByText('Copy as curl').click();
      seen.run_curl = await page.locator('#run-curl').inputValue();
      await page.screenshot({ path: `${artifacts}/run-${label}.png`, fullPage: true });
      // A virtual server with it.
      await page.getByRole('link', { name: 'Servers' }).click();
      await page.getByLabel('Name', { exact: true }).fill('Browser desk');
      await page.getByLabel('browser_weather').check();
      await page.getByRole('button', { name: 'Create virtual server' }).click();
      await page.waitForSelector('.flash');
      seen.server_flash = await page.locator('.flash').textContent();
      seen.server_tools = await page.getByRole('row', { name: /Browser desk/ }).getByRole('cell').nth(1).textContent();
      await page.screenshot({ path: `${artifacts}/servers-${label}.png`, fullPage: true });
      // Its connect panel: full URLs, a token for it made in place, configurations carrying it.
      await page.getByRole('link', { name: 'Connect a client to Browser desk' }).click();
      seen.connect_url = await page.locator('#url-mcp').inputValue();
      await page.getByText('Create a token for this server').click();
      await page.getByRole('button', { name: 'Create token' }).click();
      await page.waitForSelector('#server-token');
      const serverToken = await page.locator('#server-token').inputValue();
      seen.connect_config_has_token = (await page.locator('#client-vscode').inputValue()).includes(serverToken);
      await page.locator('[data-copy="#client-vscode"]').click();
      seen.connect_copied = await page.locator('[data-copy="#client-vscode"]').textContent();
      await page.screenshot({ path: `${artifacts}/connect-${label}.png`, fullPage: true });
      // A resource: created, then edited.
      await page.getByRole('link', { name: 'Resources' }).click();
      await page.getByLabel('URI', { exact: true }).fill('docs://browser');
      await page.getByLabel('Name', { exact: true }).fill('Browser guide');
      await page.getByLabel('Content').fill('Made in the browser');
      await page.getByLabel('Tags (comma-separated)').fill('docs, browser');
      await page.getByRole('button', { name: 'Create resource' }).click();
      await page.waitForSelector('.flash');
      seen.resource_flash = await page.locator('.flash').textContent();
      await page.getByRole('link', { name: 'Edit Browser guide' }).click();
      await page.getByLabel('Description').fill('Edited in the browser');
      await page.getByRole('button', { name: 'Save' }).click();
      await page.waitForSelector('.flash');
      seen.resource_saved = await page.locator('.flash').textContent();
      await page.getByLabel('Tag', { exact: true }).selectOption('browser');
      await page.getByRole('button', { name: 'Search' }).click();
      seen.resource_rows = await page.getByRole('row', { name: /Browser guide/ }).count();
      await page.screenshot({ path: `${artifacts}/resources-${label}.png`, fullPage: true });
      // A prompt.
      await page.getByRole('link', { name: 'Prompts' }).click();
      await page.getByLabel('Name', { exact: true }).fill('browser_prompt');
      await page.getByLabel('Template').fill('Summarise {{ text }}');
      await page.getByRole('button', { name: 'Create prompt' }).click();
      await page.waitForSelector('.flash');
      seen.prompt_flash = await page.locator('.flash').textContent();
      await page.screenshot({ path: `${artifacts}/prompts-${label}.png`, fullPage: true });
      await page.getByRole('link', { name: 'Gateways' }).click();
      await page.screenshot({ path: `${artifacts}/gateways-${label}.png`, fullPage: true });
      // Metrics over a day, and export/import.
      await page.goto(`${base}/admin/metrics`);
      await page.getByRole('link', { name: '24h' }).click();
      seen.metrics_chart = await page.locator('#chart-h').textContent();
      await page.screenshot({ path: `${artifacts}/metrics-${label}.png`, fullPage: true });
      await page.goto(`${base}/admin/transfer`);
      seen.transfer_heading = await page.getByRole('heading', { level: 1 }).textContent();
      await page.screenshot({ path: `${artifacts}/transfer-${label}.png`, fullPage: true });
      // A token for that server: shown once, then revoked.
      await page.getByRole('link', { name: 'Tokens' }).click();
      // With tokens listed, the create panel starts folded.
      seen.token_panel_folded = !(await page.locator('details.create').evaluate((d) => d.open));
      await page.locator('details.create summary').click();
      await page.getByLabel('Name', { exact: true }).fill('ci');
      await page.getByLabel('Only for virtual server').selectOption({ label: 'Browser desk' });
      await page.getByRole('button', { name: 'Create token' }).click();
      seen.token_shown = (await page.locator('#new-token').inputValue()).length > 20;
      await page.getByRole('button', { name: 'Copy' }).click();
      seen.copy_label = await page.getByRole('button', { name: 'Copied' }).count();
      await page.screenshot({ path: `${artifacts}/tokens-${label}.png`, fullPage: true });
      await page.getByRole('button', { name: 'Revoke ci' }).click();
      await page.waitForSelector('.flash');
      seen.token_state = await page.getByRole('row', { name: /ci/ }).getByRole('cell').nth(3).textContent();
      seen.token_still_shown = await page.locator('#new-token').count();
      // Access: a user, a team with that user in it.
      await page.getByRole('link', { name: 'Users' }).click();
      const newUser = page.locator('details.create');
      await newUser.locator('summary').click();
      await newUser.getByLabel('Email').fill('dev@example.com');
      await newUser.getByLabel('Full name').fill('Dev Eloper');
      await newUser.getByLabel('Password').fill('correct horse battery staple');
      await newUser.getByLabel('Role').selectOption('developer');
      await newUser.getByRole('button', { name: 'Create user' }).click();
      await page.waitForSelector('.flash');
      seen.user_flash = await page.locator('.flash').textContent();
      await page.screenshot({ path: `${artifacts}/users-${label}.png`, fullPage: true });
      await page.getByRole('link', { name: 'Teams' }).click();
      await page.locator('details.create').evaluate((d) => { d.open = true; });
      await page.getByLabel('Name', { exact: true }).fill('Ops');
      await page.getByRole('button', { name: 'Create team' }).click();
      await page.waitForSelector('.flash');
      await page.getByLabel('Add member (email)').last().fill('dev@example.com');
      await page.getByRole('button', { name: 'Add to Ops' }).click();
      await page.waitForSelector('.flash');
      seen.team_flash = await page.locator('.flash').textContent();
      seen.team_members = await page.getByRole('table', { name: 'Members of Ops' }).getByRole('row').count();
      await page.screenshot({ path: `${artifacts}/teams-${label}.png`, fullPage: true });
      // A user disabled from their row, then the change found in the audit trail.
      await page.getByRole('link', { name: 'Users' }).click();
      await page.getByRole('button', { name: 'Disable dev@example.com' }).click();
      await page.waitForSelector('.flash');
      seen.disable_flash = await page.locator('.flash').textContent();
      await page.getByRole('link', { name: 'Audit' }).click();
      await page.getByLabel('Action').fill('users.');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForURL(/action=users/);
      seen.audit_actions = await page.locator('table.audit td[data-label="Action"] code').allTextContents();
      await page.locator('table.audit details summary').first().click();
      seen.audit_change = await page.locator('table.audit dl.changes').first().textContent();
      await page.screenshot({ path: `${artifacts}/audit-${label}.png`, fullPage: true });
      // The account page: a mismatch is shown at its field.
      await page.getByRole('link', { name: email }).click();
      await page.getByLabel('Current password').fill(password);
      await page.getByLabel('New password', { exact: true }).fill('a new passphrase 1234');
      await page.getByLabel('New password again').fill('something else 5678');
      await page.getByRole('button', { name: 'Change password' }).click();
      await page.waitForSelector('.field-error');
      seen.account_field_error = await page.locator('#confirm-password-error').textContent();
      seen.account_invalid = await page.getByLabel('New password again').getAttribute('aria-invalid');
      await page.screenshot({ path: `${artifacts}/account-${label}.png`, fullPage: true });
      await page.goto(`${base}/admin`);
      await page.waitForSelector('[data-live][data-updated]', { timeout: 15000 });
      seen.tools_count_after = await page.locator('[data-figure="counts.tools"]').textContent();
      seen.servers_count_after = await page.locator('[data-figure="counts.servers"]').textContent();
    }
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/admin/login`);
    await page.goto(`${base}/admin`);
    seen[`${label}_after_sign_out`] = new URL(page.url()).pathname;
    await page.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
