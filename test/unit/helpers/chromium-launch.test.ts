import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { chromiumExecutable, launchChromium } from "../../helpers/chromium";

// The browser tests' launcher retries a browser that dies at start, and fails with every error
// when it never starts. A "browser" that crashes at once stands in for the real one.
describe("launchChromium", () => {
  const saved = process.env.CHROMIUM_PATH;
  afterEach(() => {
    if (saved === undefined) delete process.env.CHROMIUM_PATH;
    else process.env.CHROMIUM_PATH = saved;
    vi.restoreAllMocks();
  });

  it("tries a browser that dies at start three times, then fails with each attempt's error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crashing-browser-"));
    const counter = join(dir, "count");
    const fake = join(dir, "chromium");
    writeFileSync(fake, `#!/bin/sh\necho started >> ${counter}\nkill -SEGV $$\n`);
    chmodSync(fake, 0o755);
    process.env.CHROMIUM_PATH = fake;
    const printed = vi.spyOn(console, "error").mockImplementation(() => undefined);

    const failure = await launchChromium(3).then(() => undefined, (e: unknown) => e);
    expect(failure).toBeInstanceOf(AggregateError);
    expect((failure as AggregateError).errors).toHaveLength(3);
    expect((failure as AggregateError).message).toContain("did not start in 3 attempts");
    expect(readFileSync(counter, "utf8").trim().split("\n")).toHaveLength(3);
    expect(printed.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringContaining("chromium launch 1 of 3 failed"),
      expect.stringContaining("chromium launch 2 of 3 failed"),
      expect.stringContaining("chromium launch 3 of 3 failed"),
    ]);
  });

  it("returns the browser of the attempt that started after one that died", async () => {
    const real = await chromiumExecutable();
    const dir = mkdtempSync(join(tmpdir(), "crashing-once-browser-"));
    const marker = join(dir, "crashed");
    const fake = join(dir, "chromium");
    writeFileSync(fake, `#!/bin/sh\nif [ ! -e ${marker} ]; then touch ${marker}; kill -SEGV $$; fi\nexec ${real} "$@"\n`);
    chmodSync(fake, 0o755);
    process.env.CHROMIUM_PATH = fake;
    const printed = vi.spyOn(console, "error").mockImplementation(() => undefined);

    const browser = await launchChromium(3);
    try {
      const page = await browser.newPage();
      await page.setContent("<p id=x>started on the second attempt</p>");
      expect(await page.textContent("#x")).toBe("started on the second attempt");
    } finally {
      await browser.close();
    }
    expect(printed.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringContaining("chromium launch 1 of 3 failed")]);
  });
});
