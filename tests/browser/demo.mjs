// Follows `orderkeeper demo` from the link it prints, as a newcomer would: the page takes the
// token from the link, fills with the trader's orders, shows the restart banner and the
// recovered orders after a kill, comes back live, and holds one row per order throughout.
import { launchBrowser, shots } from "./launch.mjs";

const link = process.argv[2];
const browser = await launchBrowser();
const errors = [];
const oneRowPerOrder = async (page) => {
  const ids = await page.$$eval("#orders tr", (rows) => rows.map((r) => r.dataset.id));
  if (new Set(ids).size !== ids.length) throw new Error(`${ids.length - new Set(ids).size} orders shown twice`);
  return ids.length;
};
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(link);
  const token = new URL(link).hash.replace("#token=", "");
  await page.waitForFunction((t) => document.getElementById("token").value === t, token);
  if (new URL(page.url()).hash) throw new Error("the token stayed in the address bar");
  await page.waitForSelector('#connection[data-state="live"]');
  await page.waitForSelector("#orders tr", { timeout: 15_000 });

  // The first kill comes a quarter of the way in.
  await page.waitForSelector("#recovery-banner:not([hidden])", { timeout: 30_000 });
  const banner = await page.locator("#recovery-text").innerText();
  if (!banner.includes("Engine restarted at")) throw new Error(`unexpected banner: ${banner}`);
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 15_000 });
  await page.waitForSelector("#orders tr.recovered", { state: "attached", timeout: 15_000 });
  const afterKill = await oneRowPerOrder(page);

  // The stream goes on after the restart, and the page with it.
  await page.waitForFunction((n) => document.querySelectorAll("#orders tr").length > n, afterKill, { timeout: 15_000 });
  const later = await oneRowPerOrder(page);
  await page.screenshot({ path: `${shots}demo.png`, fullPage: true });

  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log(`demo followed: "${banner}"; ${afterKill} orders after the first kill, ${later} later, each shown once`);
} catch (error) {
  console.error(`browser demo test failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
