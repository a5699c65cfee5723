import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium, type Browser } from "playwright-core";

/**
 * The headless Chromium the browser tests drive. By default the one shipped inside the
 * `@sparticuz/chromium` devDependency (brotli-compressed in the npm package, so `npm ci` is
 * all it takes: no apt, no download); `CHROMIUM_PATH` points at another binary instead.
 *
 * The package inflates itself into `os.tmpdir()`, shared by every checkout and version on the
 * machine. Here it is inflated once per package version into its own directory, by a child
 * process whose TMPDIR is a fresh staging directory that is then renamed into place: two test
 * files (or two checkouts) preparing it at once never see a half-written binary.
 */
export async function chromiumExecutable(): Promise<string> {
  const override = process.env.CHROMIUM_PATH;
  if (override) {
    if (!existsSync(override)) throw new Error(`CHROMIUM_PATH=${override} does not exist (unset it to use the @sparticuz/chromium devDependency)`);
    return override;
  }
  const require = createRequire(import.meta.url);
  let version: string;
  try {
    // the package exports no ./package.json: find it above the entry point
    let dir = dirname(require.resolve("@sparticuz/chromium"));
    while (!existsSync(join(dir, "package.json")) || !readFileSync(join(dir, "package.json"), "utf8").includes('"@sparticuz/chromium"')) dir = dirname(dir);
    version = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
  } catch (error) {
    throw new Error("@sparticuz/chromium is not installed: run `npm ci` (it is a devDependency), or set CHROMIUM_PATH to a Chromium binary", { cause: error });
  }
  const home = join(tmpdir(), `genai-metering-chromium-${version}`);
  const binary = join(home, "chromium");
  if (existsSync(binary)) return binary;

  const root = join(tmpdir(), "genai-metering-chromium-staging");
  mkdirSync(root, { recursive: true });
  const staging = mkdtempSync(join(root, `${version}-`));
  try {
    const script = 'import c from "@sparticuz/chromium"; process.stdout.write(await c.executablePath());';
    const inflated = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: process.cwd(),
      env: { ...process.env, TMPDIR: staging },
      encoding: "utf8",
      timeout: 120_000,
    });
    if (inflated !== join(staging, "chromium")) throw new Error(`@sparticuz/chromium inflated to ${inflated}, expected ${join(staging, "chromium")}`);
    try {
      renameSync(staging, home);
    } catch (error) {
      // another run renamed its copy first: use that one
      if (!existsSync(binary)) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return binary;
}

/**
 * The package's fonts.conf names Lambda's paths; this one keeps the machine's fonts and adds the
 * package's bundled ones, so text renders even where no font is installed.
 */
function fontConfig(executablePath: string): string | undefined {
  const dir = join(dirname(executablePath), "fonts", "fonts");
  if (!existsSync(dir)) return undefined;
  const file = join(dirname(executablePath), "fonts-local.conf");
  const xml = `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>${dir}</dir>
  <cachedir>${join(dirname(executablePath), "fonts-cache")}</cachedir>
</fontconfig>
`;
  if (!existsSync(file) || readFileSync(file, "utf8") !== xml) {
    // written aside and renamed: a test file launching at the same moment never reads half of it
    const aside = `${file}.${process.pid}`;
    writeFileSync(aside, xml);
    renameSync(aside, file);
  }
  return file;
}

/**
 * Launches the test Chromium headless (no sandbox: CI runs as root).
 *
 * Headless Chromium now and then dies at start (SIGSEGV before the first page, seen once in CI
 * while another test file launched its own browser; Sparticuz/chromium#286 reports the same). No
 * page has been opened then, so nothing the test checks has run: the launch is tried up to three
 * times, and each failure is printed. A browser that never starts fails the test with every error.
 */
export async function launchChromium(attempts = 3): Promise<Browser> {
  const errors: unknown[] = [];
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await launchOnce();
    } catch (error) {
      errors.push(error);
      console.error(`chromium launch ${attempt} of ${attempts} failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`);
      if (attempt < attempts) await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  throw new AggregateError(errors, `headless Chromium did not start in ${attempts} attempts (first error: ${errors[0] instanceof Error ? errors[0].message : String(errors[0])})`);
}

async function launchOnce(): Promise<Browser> {
  const executablePath = await chromiumExecutable();
  const fonts = process.env.CHROMIUM_PATH ? undefined : fontConfig(executablePath);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  if (fonts) env.FONTCONFIG_FILE = fonts;
  return chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    env,
  });
}
