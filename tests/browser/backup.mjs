// Backups in a real browser. PHASE=download: the owner downloads an encrypted backup from
// Settings → Backups (and the week warning goes away), and opens the emergency kit; the file
// is saved as BACKUP_FILE. PHASE=restore: on a fresh, unclaimed server, the setup wizard's
// "Restore from a backup" brings the household back, and the owner signs in.
// PHASE=restore-disk: the same, but the wizard looks for the backup on the device's disks
// (the server's `backup.restore_folders` holds it), shows what it holds, and restores it.
//
// Env: HEARTH_URL, PHASE, BACKUP_FILE, OUT; download: OWNER, OWNER_PASSWORD; restore:
// SETUP_CODE, OWNER, OWNER_PASSWORD.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const BASE = process.env.HEARTH_URL;
const PHASE = process.env.PHASE;
const FILE = process.env.BACKUP_FILE;
const OUT = process.env.OUT || "test-output/browser";
const OWNER = process.env.OWNER || "anna";
const PASSWORD = process.env.OWNER_PASSWORD;
const PASSPHRASE = "amber kettle window seventeen";
mkdirSync(OUT, { recursive: true });

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) { passed++; console.log("ok   " + name); }
  else { failed++; console.log("FAIL " + name + (detail ? ": " + detail : "")); }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const consoleErrors = [];

async function signIn(page) {
  await page.getByLabel("Username", { exact: true }).fill(OWNER);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Den", exact: true }).waitFor();
}

async function download(page) {
  await page.goto(BASE);
  await signIn(page);
  await page.goto(BASE + "/#/settings/backups");
  await page.getByRole("heading", { name: "Backups", exact: true }).waitFor();
  const warning = page.locator("#backup-warning");
  check("the owner is warned while no backup exists", (await warning.count()) === 1 && /No backup/.test(await warning.textContent()));
  await page.screenshot({ path: `${OUT}/backup-01-page.png`, fullPage: true });
  // A short passphrase is refused before anything is sent.
  await page.getByLabel("Passphrase", { exact: true }).first().fill("short");
  await page.getByLabel("Passphrase again", { exact: true }).first().fill("short");
  await page.getByRole("button", { name: "Download a backup" }).click();
  check("a short passphrase is refused inline", /at least 10/.test(await page.locator("#dl-error").textContent()));
  await page.getByLabel("Passphrase", { exact: true }).first().fill(PASSPHRASE);
  await page.getByLabel("Passphrase again", { exact: true }).first().fill(PASSPHRASE);
  const [dl] = await Promise.all([
    page.waitForEvent("download", { timeout: 60000 }),
    page.getByRole("button", { name: "Download a backup" }).click(),
  ]);
  await dl.saveAs(FILE);
  check("the backup downloads as an .hbk file", /^hearth-backup-\d+\.hbk$/.test(dl.suggestedFilename()), dl.suggestedFilename());
  await page.reload();
  await page.getByRole("heading", { name: "Backups", exact: true }).waitFor();
  check("the warning is gone after a backup", (await page.locator("#backup-warning").count()) === 0);
  check("the last backup is shown", /Last download/.test(await page.locator("#backup-summary").textContent()));
  await page.goto(BASE + "/#/settings/backups/kit");
  await page.getByRole("heading", { name: "Hearth emergency kit" }).waitFor();
  await page.locator("#kit-pass-input").fill(PASSPHRASE);
  check("the kit shows the typed passphrase for printing", (await page.locator("#kit-pass").textContent()) === PASSPHRASE);
  await page.emulateMedia({ media: "print" });
  await page.screenshot({ path: `${OUT}/backup-02-kit-print.png`, fullPage: true });
  check("printing hides the typing field and the menu", !(await page.locator("#kit-pass-input").isVisible()) && !(await page.locator("#nav").isVisible()));
  await page.emulateMedia({ media: "screen" });
}

async function restore(page) {
  await page.goto(BASE);
  await page.getByRole("heading", { name: "Welcome to your Hearth" }).waitFor();
  await page.getByRole("button", { name: "Restore from a backup" }).click();
  await page.getByRole("heading", { name: "Restore from a backup" }).waitFor();
  await page.getByLabel("Setup code", { exact: true }).fill(process.env.SETUP_CODE);
  await page.locator("#restore-file").setInputFiles(FILE);
  // A wrong passphrase first: its own message, nothing changed.
  await page.getByLabel("The backup's passphrase").fill("not the right passphrase");
  await page.getByRole("button", { name: "Restore" }).click();
  await page.locator("#restore-error").filter({ hasText: /passphrase is wrong/ }).waitFor();
  check("a wrong passphrase is named", true);
  await page.screenshot({ path: `${OUT}/backup-03-wrong-passphrase.png`, fullPage: true });
  await page.getByLabel("The backup's passphrase").fill(PASSPHRASE);
  await page.getByRole("button", { name: "Restore" }).click();
  await page.getByRole("heading", { name: "Restored" }).waitFor({ timeout: 120000 });
  check("the wizard restores the backup", /Den/.test(await page.locator("#restored").textContent()));
  await page.screenshot({ path: `${OUT}/backup-04-restored.png`, fullPage: true });
  await page.getByRole("link", { name: "Sign in" }).click();
  await page.getByLabel("Username", { exact: true }).waitFor();
  await signIn(page);
  check("the owner signs in to the restored Hearth", true);
  await page.goto(BASE + "/#/settings/users");
  await page.getByRole("heading", { name: "Users & Sharing" }).first().waitFor();
  await page.screenshot({ path: `${OUT}/backup-05-users.png`, fullPage: true });
}

async function restoreFromDisk(page) {
  await page.goto(BASE);
  await page.getByRole("heading", { name: "Welcome to your Hearth" }).waitFor();
  await page.getByRole("button", { name: "Restore from a backup" }).click();
  await page.getByRole("heading", { name: "Restore from a backup" }).waitFor();
  await page.getByLabel("Setup code", { exact: true }).fill(process.env.SETUP_CODE);
  // A wrong passphrase: the backup is found, and named as not opened by it.
  await page.getByLabel("The backup's passphrase").fill("not the right passphrase");
  await page.getByRole("button", { name: "Look for backups on disks" }).click();
  await page.locator("#find-status").filter({ hasText: /found/ }).waitFor({ timeout: 60000 });
  const wrong = await page.locator("#found-backups").textContent();
  check("with a wrong passphrase the backup on the disk is found but not opened", /passphrase is wrong/.test(wrong) && (await page.locator("#found-0").isDisabled()), wrong);
  await page.getByRole("button", { name: "Restore" }).click();
  check("nothing is restored without a backup that opens", /choose one, or choose a backup file/.test(await page.locator("#restore-error").textContent()));
  await page.getByLabel("The backup's passphrase").fill(PASSPHRASE);
  await page.getByRole("button", { name: "Look for backups on disks" }).click();
  await page.locator("#found-0:not([disabled])").waitFor({ timeout: 60000 });
  const shown = await page.locator("#found-backups").textContent();
  check("the backup on the disk shows its device, Hearth version and board", /\u201cDen\u201d, made .* by Hearth \d+\.\d+\.\d+.* on \S+/.test(shown) && /hearth-backups\/hearth-backup-20261206-041500\.hbk/.test(shown), shown);
  check("the backup found is chosen", await page.locator("#found-0").isChecked());
  await page.screenshot({ path: `${OUT}/backup-06-found-on-disk.png`, fullPage: true });
  await page.getByRole("button", { name: "Restore" }).click();
  await page.getByRole("heading", { name: "Restored" }).waitFor({ timeout: 120000 });
  check("the wizard restores the backup found on the disk", /Den/.test(await page.locator("#restored").textContent()));
  await page.getByRole("link", { name: "Sign in" }).click();
  await page.getByLabel("Username", { exact: true }).waitFor();
  await signIn(page);
  check("the owner signs in to the Hearth restored from the disk", true);
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  if (PHASE === "download") await download(page);
  else if (PHASE === "restore") await restore(page);
  else if (PHASE === "restore-disk") await restoreFromDisk(page);
  else throw new Error("set PHASE to download, restore or restore-disk");
  check("no console errors", consoleErrors.length === 0, consoleErrors.join(" | "));
} catch (e) {
  failed++;
  console.log("FAIL backup journey stopped: " + (e && e.message ? e.message.split("\n")[0] : e));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
