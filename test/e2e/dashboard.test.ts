/// <reference lib="dom" />
import { PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mkdirSync, writeFileSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../../shared/events/invocation";
import type { LocalStack } from "../../local/stack";
import { launchChromium } from "../helpers/chromium";
import { invocation } from "../helpers/events";
import { eventBridgeClient, startTestStack } from "./stack-harness";

let stack: LocalStack;
let browser: Browser;

beforeAll(async () => {
  ({ stack } = await startTestStack());
  const eb = eventBridgeClient(stack);
  // an Advanced tenant with a tiny quota: downgraded, so its decision names the target model
  const put = await fetch(`${stack.url}/tenants/dash-adv-01/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ tier: "advanced", monthlyTokens: 1000 }) });
  expect(put.ok, await put.text()).toBe(true);
  const tenants = ["dash-basic-01", "dash-adv-01", "dash-prem-01"];
  const entries = tenants.flatMap((tenantId, t) =>
    Array.from({ length: 3 + t * 3 }, () => ({
      Source: INVOCATION_SOURCES.bedrock,
      DetailType: INVOCATION_DETAIL_TYPE,
      Detail: JSON.stringify(invocation({ tenantId, modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0" })),
      EventBusName: stack.busName,
    })),
  );
  for (let i = 0; i < entries.length; i += 10) await eb.send(new PutEventsCommand({ Entries: entries.slice(i, i + 10) }));
  await stack.drain();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe("local dashboard in headless Chromium", () => {
  it("shows every tenant with its cost, draws the charts, and renders a non-blank screenshot", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(stack.url + "/");
    await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });

    const rows = await page.$$eval("#tenants tr.tenant", (trs) => trs.map((tr) => (tr as HTMLElement).dataset.id));
    expect(rows.sort()).toEqual(["dash-adv-01", "dash-basic-01", "dash-prem-01"]);
    // premium sent 9 Sonnet calls of 307/533 tokens: 9 x $0.008916
    const premCost = await page.$eval('tr[data-id="dash-prem-01"] td:nth-child(5)', (td) => td.textContent);
    expect(Number(premCost)).toBeCloseTo(9 * 0.008916, 4);
    expect(await page.locator("#costChart rect").count()).toBe(3);

    // the decision column shows the whole decision, target model included, inside the page
    const decision = await page.$eval('tr[data-id="dash-adv-01"] td.decision', (td) => ({
      text: td.textContent,
      clipped: td.scrollWidth > td.clientWidth + 1,
      right: td.getBoundingClientRect().right,
      page: document.documentElement.clientWidth,
    }));
    expect(decision.text).toBe("downgrade → claude-3-haiku-20240307-v1:0");
    expect(decision.clipped).toBe(false);
    expect(decision.right).toBeLessThanOrEqual(decision.page);

    await page.click('tr[data-id="dash-adv-01"]');
    await page.waitForFunction(() => document.querySelector("#selTenant")?.textContent === "dash-adv-01");
    expect(await page.locator("#timeChart rect").count()).toBeGreaterThan(0);
    // the time axis spans the last 7 days: a tick per midnight
    expect(await page.locator("#timeChart line").count()).toBe(7);

    const shot = await page.screenshot({ fullPage: true });
    mkdirSync("test-results", { recursive: true });
    writeFileSync("test-results/dashboard.png", shot);
    // Screenshot check: decode the PNG in the page and count the chart's coloured pixels.
    const colourful = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width;
      c.height = img.height;
      const g = c.getContext("2d")!;
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 80) n++;
      return n;
    }, shot.toString("base64"));
    expect(colourful).toBeGreaterThan(2000);
  });
});
