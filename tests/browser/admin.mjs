// The admin in a real browser: headless Chromium (Debian's, driven by
// playwright-core) against a live `kumo serve`. Run by
// tests/cli/admin_browser.rs, which makes the project, its accounts and
// 120 seeded avatars, starts the server and passes:
//
//   KUMO_URL          the server, e.g. http://127.0.0.1:4000
//   KUMO_ADMIN_EMAIL  an `admin` account
//   KUMO_USER_EMAIL   a plain `user` account
//   KUMO_SCREENSHOTS  the directory for one PNG per page
//   CHROMIUM          the browser (default: `command -v chromium`)
//
// Every step is checked; the first mismatch throws, so the exit code says
// whether the admin works. Installed by scripts/browser-tools.sh.

import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = need("KUMO_URL").replace(/\/$/, "");
const adminEmail = need("KUMO_ADMIN_EMAIL");
const userEmail = need("KUMO_USER_EMAIL");
const shots = need("KUMO_SCREENSHOTS");
const executablePath =
  process.env.CHROMIUM ||
  execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

function equal(actual, expected, what) {
  check(
    JSON.stringify(actual) === JSON.stringify(expected),
    `${what} (expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)})`,
  );
}

let shot = 0;
/** A full-page screenshot named after the step, numbered in order. */
async function screenshot(page, name) {
  shot += 1;
  const path = join(shots, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
}

async function heading(page) {
  return (await page.locator("main h1").first().textContent()).trim();
}

/** The values of the record page's fields, by name. */
async function recordFields(page) {
  return page.locator("dl.record").evaluate((dl) => {
    const out = {};
    for (const dt of dl.querySelectorAll("dt")) {
      out[dt.textContent.trim()] = dt.nextElementSibling.textContent.trim();
    }
    return out;
  });
}

/** The first cells (the linked column) of the list's rows. */
async function firstCells(page) {
  return page.locator("tbody tr th[scope=row]").allTextContents();
}

async function columnValues(page, name) {
  const names = (await page.locator("thead th").allTextContents()).map((t) => t.trim());
  const at = names.indexOf(name);
  check(at >= 0, `the list has a ${name} column (columns: ${names.join(", ")})`);
  return page
    .locator("tbody tr")
    .evaluateAll(
      (rows, at) => rows.map((r) => r.children[at].textContent.trim()),
      at,
    );
}

/** The newest mail to `to` in the dev mailbox (served to loopback only). */
async function mailTo(to) {
  const until = Date.now() + 10_000;
  for (;;) {
    const response = await fetch(`${base}/dev/mailbox.json`);
    equal(response.status, 200, "the dev mailbox answers");
    const mail = (await response.json()).find((m) => m.to === to);
    if (mail) return mail;
    if (Date.now() > until) throw new Error(`no mail to ${to} arrived`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Asks for a sign-in link on the sign-in page; the mail that came. */
async function askForLink(page, email) {
  await page.goto(`${base}/admin`);
  equal(new URL(page.url()).pathname, "/admin/sign_in", "a signed-out browser is sent to sign in");
  await page.fill("#link-email", email);
  await page.click("text=Email me a link");
  equal(await heading(page), "Check your email", "the page waits for the link");
  return mailTo(email);
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    await scenario(browser);
  } finally {
    await browser.close();
  }
}

async function scenario(browser) {
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await desk.newPage();
  // A script error or a refused policy (CSP) on any page fails the test.
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (403|404|422)/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });

  // ---- sign in by magic link: the desk's page signs itself in (htmx
  // polling) once the link is pressed on another device.
  await page.goto(`${base}/admin/sign_in`);
  await screenshot(page, "sign-in");
  const mail = await askForLink(page, adminEmail);
  await screenshot(page, "link-sent");
  const link = mail.text.match(/https?:\/\/\S+\/auth\/magic_link\/[A-Za-z0-9_-]{43}/);
  check(link !== null, `the mail holds a sign-in link (${mail.subject})`);
  const phone = await browser.newContext({ viewport: { width: 390, height: 700 } });
  const phonePage = await phone.newPage();
  await phonePage.goto(link[0]);
  await screenshot(phonePage, "link-opened");
  await phonePage.locator("form button").click();
  await phonePage.waitForLoadState();
  await screenshot(phonePage, "link-pressed");
  await phone.close();
  await page.waitForURL(`${base}/admin`, { timeout: 15_000 });
  equal(await heading(page), "Dashboard", "the waiting page signed itself in");
  check(
    (await page.locator("header").textContent()).includes(`${adminEmail} (admin)`),
    "the header names the admin",
  );
  const avatarsRow = page.locator("tbody tr", { has: page.locator('a[href="/admin/r/avatars"]') });
  equal((await avatarsRow.locator("td.number").textContent()).trim(), "120", "the dashboard counts 120 avatars");
  await screenshot(page, "dashboard");

  // ---- the dev mailbox, linked from the admin while the adapter is `dev`.
  await page.click('a[href="/dev/mailbox"]');
  equal(
    (await page.locator("h1").first().textContent()).trim(),
    "Development mailbox",
    "the Mailbox link opens the dev mailbox",
  );
  check(
    (await page.locator("body").textContent()).includes(adminEmail),
    "the mailbox shows the sign-in mail sent to the admin",
  );
  await screenshot(page, "mailbox");
  await page.goto(`${base}/admin`);

  // ---- a list: pages of 50, then the last 20.
  await page.click('nav[aria-label=Resources] a[href="/admin/r/avatars"]');
  equal(await heading(page), "Avatars", "the avatars list");
  const first = await firstCells(page);
  equal(first.length, 50, "the first page has 50 rows");
  await screenshot(page, "list");
  await page.click("a[rel=next]");
  const second = await firstCells(page);
  equal(second.length, 50, "the second page has 50 rows");
  check(!second.some((id) => first.includes(id)), "the second page repeats no row of the first");
  check((await page.locator("a[rel=prev]").count()) === 1, "the second page links back");
  await page.click("a[rel=next]");
  const third = await firstCells(page);
  equal(third.length, 20, "the third page has the last 20 rows");
  equal(await page.locator("a[rel=next]").count(), 0, "the last page has no next page");
  equal(new Set([...first, ...second, ...third]).size, 120, "the pages show all 120 records once");
  await screenshot(page, "list-last-page");
  await page.click("a[rel=prev]");
  equal(await firstCells(page), second, "Previous page goes back to the second page");

  // Sorting by a column, by clicking its heading (again to reverse).
  await page.goto(`${base}/admin/r/avatars`);
  await page.click('thead a:text-is("polycount")');
  let counts = (await columnValues(page, "polycount")).map(Number);
  equal(counts.slice(0, 3), [10, 20, 30], "sorted by polycount, smallest first");
  await page.click('thead a:text-is("polycount")');
  counts = (await columnValues(page, "polycount")).map(Number);
  equal(counts.slice(0, 3), [1200, 1190, 1180], "sorted by polycount again, largest first");
  await screenshot(page, "list-sorted");

  // Filtering, in the API's query language.
  await page.goto(`${base}/admin/r/avatars?filter[name][contains]=Seeded%2011&sort=name`);
  const names = await columnValues(page, "name");
  equal(
    names,
    Array.from({ length: 10 }, (_, i) => `Seeded ${110 + i}`),
    "the filter keeps the ten names containing \"Seeded 11\"",
  );
  equal(await page.locator("a[rel=next]").count(), 0, "one page of filtered rows");
  await screenshot(page, "list-filtered");

  // The filter form and the search box, as a person uses them.
  await page.goto(`${base}/admin/r/avatars`);
  await page.click("details.filters summary");
  await page.fill("#flt-name", "Seeded 07");
  await page.fill("#flt-polycount-from", "750");
  await page.click("details.filters button[type=submit]");
  equal(
    (await columnValues(page, "name")).sort(),
    ["Seeded 075", "Seeded 076", "Seeded 077", "Seeded 078", "Seeded 079"],
    "the filter form narrows by name and by a polycount range",
  );
  await screenshot(page, "list-filter-form");
  await page.goto(`${base}/admin/r/avatars`);
  await page.fill("#q", "SEEDED 10");
  await page.click("form.search button[type=submit]");
  equal(
    (await columnValues(page, "name")).sort(),
    Array.from({ length: 10 }, (_, i) => `Seeded ${100 + i}`),
    "the search box finds names in any case",
  );
  await screenshot(page, "list-searched");

  // ---- create: a refused save shows the errors beside their fields,
  // then the corrected form saves.
  await page.goto(`${base}/admin/r/avatars`);
  await page.click("text=New avatar");
  equal(new URL(page.url()).pathname, "/admin/r/avatars/new", "the new-record form");
  await screenshot(page, "new");
  const adminOption = page.locator("#l-uploader_id option", { hasText: adminEmail });
  check((await adminOption.count()) === 1, "the uploader field offers the admin's account");
  const adminId = await adminOption.getAttribute("value");
  // Typing in a belongs_to field searches its targets on the server (htmx).
  await Promise.all([
    page.waitForResponse((r) => r.url().includes("/admin/r/users/choices")),
    page.type("#f-uploader_id", "seeder"),
  ]);
  await page.waitForFunction(
    () => [...document.querySelectorAll("#l-uploader_id option")].every((o) => o.textContent.includes("seeder")),
  );
  equal(
    await page.locator("#l-uploader_id option").count(),
    1,
    "typing narrows the uploader's choices to the matching account",
  );
  await page.fill("#f-name", "");
  await page.fill("#f-slug", "Not A Slug");
  await page.fill("#f-polycount", "-5");
  await page.fill("#f-uploader_id", adminId);
  let response = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST"),
    page.click("form.record-form button[type=submit]"),
  ]).then(([r]) => r);
  equal(response.status(), 422, "the invalid record is refused with 422");
  for (const field of ["name", "slug", "polycount"]) {
    check(
      (await page.locator(`#e-${field}`).count()) === 1 &&
        (await page.locator(`#f-${field}`).getAttribute("aria-invalid")) === "true",
      `an error is shown beside ${field}`,
    );
  }
  equal(await page.inputValue("#f-slug"), "Not A Slug", "the form keeps what was typed");
  await screenshot(page, "new-invalid");
  await page.fill("#f-name", "Browser Bot");
  await page.fill("#f-slug", "browser-bot");
  await page.fill("#f-polycount", "42");
  await page.selectOption("#f-kind", "creature");
  await page.fill("#f-description", "Made in Chromium");
  await page.click("form.record-form button[type=submit]");
  const recordPath = new URL(page.url()).pathname;
  check(/^\/admin\/r\/avatars\/[0-9a-f-]{36}$/.test(recordPath), `saved, the record's page (${recordPath})`);
  let fields = await recordFields(page);
  equal(
    [fields.name, fields.slug, fields.polycount, fields.kind, fields.is_public],
    ["Browser Bot", "browser-bot", "42", "creature", "false"],
    "the record as created",
  );
  check(!("secret_note" in fields), "the sensitive attribute is not shown");
  await screenshot(page, "record");

  // ---- edit.
  await page.click(".record-links a:text-is('Edit')");
  equal(new URL(page.url()).pathname, `${recordPath}/edit`, "the edit form");
  equal(await page.inputValue("#f-name"), "Browser Bot", "the edit form holds the record");
  await screenshot(page, "edit");
  await page.fill("#f-name", "Browser Bot II");
  await page.fill("#f-polycount", "43");
  await page.click("form.record-form button[type=submit]");
  equal(new URL(page.url()).pathname, recordPath, "saved, back on the record's page");
  fields = await recordFields(page);
  equal([fields.name, fields.polycount], ["Browser Bot II", "43"], "the edit was saved");

  // ---- a named action: publish.
  const publish = page.locator("section", { has: page.locator("h2#action-publish") });
  check((await publish.count()) === 1, "the record page offers the publish action");
  await publish.locator("button").click();
  equal(new URL(page.url()).pathname, recordPath, "after the action, the record's page");
  fields = await recordFields(page);
  equal(fields.is_public, "true", "publish made the avatar public");
  await screenshot(page, "record-after-action");

  // ---- a forged form without the CSRF token is refused, and does nothing.
  await page.goto(`${base}${recordPath}/delete`);
  await screenshot(page, "confirm-delete");
  await page.locator("main form input[name=_csrf]").evaluate((input) => input.remove());
  response = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST"),
    page.click("main form button.danger"),
  ]).then(([r]) => r);
  equal(response.status(), 403, "the form without its CSRF token is refused with 403");
  equal(await heading(page), "Request refused", "the refusal says why");
  await screenshot(page, "forged-refused");
  response = await page.goto(`${base}${recordPath}`);
  equal(response.status(), 200, "the record survived the forged form");

  // A form carrying a token from another browser fares no better: the
  // token is bound to this browser's cookie and session.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await otherPage.goto(`${base}/admin/sign_in`);
  const strangerToken = await otherPage.locator("input[name=_csrf]").first().inputValue();
  await other.close();
  await page.goto(`${base}${recordPath}/delete`);
  await page
    .locator("main form input[name=_csrf]")
    .evaluate((input, token) => (input.value = token), strangerToken);
  response = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST"),
    page.click("main form button.danger"),
  ]).then(([r]) => r);
  equal(response.status(), 403, "a token made for another browser is refused with 403");

  // ---- delete, after the confirmation.
  await page.goto(`${base}${recordPath}`);
  await page.click(".record-links a:text-is('Delete')");
  equal(await heading(page), "Delete Browser Bot II?", "the confirmation page asks first");
  await page.click("main form button.danger");
  equal(new URL(page.url()).pathname, "/admin/r/avatars", "deleted, back on the list");
  await page.getByText("Deleted.").waitFor();
  response = await page.goto(`${base}${recordPath}`);
  equal(response.status(), 404, "the deleted record is gone");
  await screenshot(page, "deleted-gone");

  // ---- signing out ends the session.
  await page.click("form.sign-out button");
  equal(new URL(page.url()).pathname, "/admin/sign_in", "signed out, the sign-in page");
  await page.goto(`${base}/admin`);
  equal(new URL(page.url()).pathname, "/admin/sign_in", "signed out, the admin asks to sign in again");

  check(problems.length === 0, `no script errors or refused policies (${problems.join("; ")})`);
  await desk.close();

  // ---- a plain user, signed in with the mail's code, is refused.
  const player = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const playerPage = await player.newPage();
  const playerMail = await askForLink(playerPage, userEmail);
  const code = playerMail.text.match(/code[^0-9]*(\d{6})\b/);
  check(code !== null, "the player's mail holds a code");
  await playerPage.fill("#code", code[1]);
  response = await Promise.all([
    playerPage.waitForResponse((r) => new URL(r.url()).pathname === "/admin"),
    playerPage.click("form[action='/admin/sign_in/code'] button"),
  ]).then(([r]) => r);
  equal(response.status(), 403, "a `user` is refused the dashboard with 403");
  equal(await heading(playerPage), "Not for this account", "the 403 page says why");
  await screenshot(playerPage, "user-refused");
  response = await playerPage.goto(`${base}/admin/r/avatars`);
  equal(response.status(), 403, "and refused a list with 403");
  await player.close();
}

const started = Date.now();
main().then(
  () => console.log(`admin browser scenario passed in ${Date.now() - started} ms; screenshots in ${shots}`),
  (e) => {
    console.error(e.stack || String(e));
    process.exit(1);
  },
);
