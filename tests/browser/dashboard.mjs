// Drives the dashboard in headless Chromium: the demo token is offered, an order placed through
// the ticket reaches `filled` in the live table and its position shows in the P&L panel, a halt
// of every account shows as a banner until it is lifted, every column shows at 1280 px, a phone-sized page
// fits, a page opened after the events were pruned resyncs, after the engine is killed with
// SIGKILL and started again the page shows the restart banner, and a resting order's limit is
// changed in place. Screenshots are saved.
import { launchBrowser, shots } from "./launch.mjs";
import { execSync } from "node:child_process";

const base = process.argv[2];
const browser = await launchBrowser();
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base);

  await page.waitForFunction(() => document.getElementById("token").value.length > 0);
  await page.waitForSelector('#connection[data-state="live"]');
  await page.waitForSelector('#symbol option[value="INFY"]', { state: "attached" });

  await page.selectOption("#symbol", "INFY");
  await page.click('label[for="side-buy"]');
  await page.click('label[for="type-market"]');
  await page.fill("#qty", "5");
  await page.click("#submit-order");

  const row = page.locator("#orders tr").first();
  await page.waitForSelector('#orders tr[data-status="filled"]', { timeout: 30_000 });
  const text = await row.innerText();
  if (!text.includes("5 / 5") || !text.includes("INFY")) throw new Error(`unexpected row: ${text}`);
  if ((await page.locator("#orders tr").count()) !== 1) throw new Error("one order, one row");

  // The engine audits itself every second here; the badge shows the verdict.
  await page.waitForSelector('#audit-badge[data-state="pass"]', { timeout: 10_000 });

  await row.click();
  await page.waitForSelector("#fills tr td.mono");
  await page.waitForFunction(() => document.querySelector("#actions").innerText.includes("filled"));
  await page.waitForFunction(() => document.getElementById("positions").innerText.includes("INFY"));
  // The P&L panel shows the position the fill made, marked at the last price.
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('#pnl tr[data-symbol="INFY"] td')].map((td) => td.innerText);
    return cells[1] === "5" && /^-?[\d,]+\.\d\d$/.test(cells[3] ?? "");
  });
  // The operator halts every account: the page says so, and the banner goes once trading resumes.
  const haltAll = (halted) =>
    fetch(`${base}/v1/admin/trading`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${process.env.ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ halted }),
    }).then((r) => {
      if (!r.ok) throw new Error(`the halt was answered ${r.status}`);
    });
  await haltAll(true);
  await page.waitForSelector("#halt-banner:not([hidden])", { timeout: 10_000 });
  const halt = await page.locator("#halt-banner").innerText();
  if (!halt.includes("halted for every account")) throw new Error(`unexpected halt banner: ${halt}`);
  await page.screenshot({ path: `${shots}dashboard-halted.png`, fullPage: true });
  await haltAll(false);
  await page.waitForSelector("#halt-banner", { state: "hidden", timeout: 10_000 });
  await page.waitForTimeout(1500); // let the price charts draw a few points
  await page.screenshot({ path: `${shots}dashboard.png`, fullPage: true });

  // From 1280 px wide, every column of the orders table shows without scrolling.
  const laptop = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  laptop.on("pageerror", (e) => errors.push(String(e)));
  await laptop.goto(base);
  await laptop.waitForSelector('#orders tr[data-status="filled"]');
  const fit = await laptop.evaluate(() => {
    const wrap = document.querySelector(".table-wrap");
    return { needed: wrap.scrollWidth, shown: wrap.clientWidth };
  });
  if (fit.needed > fit.shown) throw new Error(`at 1280 px the orders table needs ${fit.needed} px of ${fit.shown}`);
  await laptop.screenshot({ path: `${shots}dashboard-1280.png`, fullPage: true });

  // On a phone (390 px wide) the page fits the screen: wide tables scroll inside their panel.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  phone.on("pageerror", (e) => errors.push(String(e)));
  await phone.goto(base);
  await phone.waitForSelector('#orders tr[data-status="filled"]');
  const widths = await phone.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    table: document.querySelector("#orders-table").scrollWidth,
  }));
  if (widths.page > 390) throw new Error(`on a phone the page is ${widths.page} px wide`);
  await phone.screenshot({ path: `${shots}dashboard-phone.png`, fullPage: true });

  // The engine keeps events for 2 s here. A dashboard opened later cannot replay them: it is told
  // to resync, reloads the orders over the API, and goes on live.
  await page.waitForTimeout(4000);
  const late = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  late.on("pageerror", (e) => errors.push(String(e)));
  await late.goto(base);
  await late.waitForFunction(() => document.getElementById("connection-text").innerText.includes("reloaded"));
  await late.waitForSelector('#orders tr[data-status="filled"]');
  if ((await late.locator("#orders tr").count()) !== 1) throw new Error("after a resync: one order, one row");

  // kill -9 in the middle, with an order resting: the page reconnects on its own and shows the
  // restart, with what recovery picked up.
  await page.evaluate(async () => {
    const token = document.getElementById("token").value;
    await fetch("/v1/orders", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": "browser-rest" },
      body: JSON.stringify({ symbol: "TCS", side: "buy", type: "limit", qty: 1, limit_price: "10.00" }),
    });
  });
  await page.waitForSelector('#orders tr[data-status="new"]', { timeout: 15_000 });
  execSync(process.env.RESTART_ENGINE);
  await page.waitForSelector("#recovery-banner:not([hidden])", { timeout: 30_000 });
  const banner = await page.locator("#recovery-text").innerText();
  if (!banner.includes("Engine restarted at") || !banner.includes("1 open order picked up")) {
    throw new Error(`unexpected banner: ${banner}`);
  }
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 15_000 });
  await page.screenshot({ path: `${shots}dashboard-restarted.png`, fullPage: true });

  // Modify in place: the resting order's limit, clicked and changed, becomes the venue's.
  page.once("dialog", (dialog) => dialog.accept("11.00"));
  await page.click('#orders tr[data-status="new"] td[data-edit="limit_price"]');
  await page.waitForFunction(
    () => document.querySelector('#orders tr[data-status="new"]')?.innerText.includes("11.00"),
    null,
    { timeout: 15_000 },
  );

  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log(`7 passed, 0 failed: the halt banner came and went with the operator's halt; after a kill -9 the page showed "${banner}"; the dashboard placed an order and watched it fill; at 1280 px every column shows; a resting order's limit was changed in place; on a phone it fits (table ${widths.table} px scrolls in its panel); opened after the events were pruned, it resynced from the API`);
} catch (error) {
  console.error(`browser test failed: ${error.message}`);
  console.log("some failed");
  process.exitCode = 1;
} finally {
  await browser.close();
}
