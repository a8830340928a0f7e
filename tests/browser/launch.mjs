// Headless Chromium as both browser tests run it, and where their screenshots go.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export const shots = new URL("../artifacts/", import.meta.url).pathname;
mkdirSync(shots, { recursive: true });

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}
