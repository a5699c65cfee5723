import { createHmac, timingSafeEqual } from "node:crypto";
import { HttpCursorInvalidError } from "./errors";

/** Longest cursor accepted; longer input is rejected before any decoding. */
export const MAX_CURSOR_LENGTH = 4096;
/** Shortest accepted signing key (bytes of its UTF-8 text). */
export const MIN_CURSOR_SECRET_LENGTH = 32;
const VERSION = "c1";
const MAC_BYTES = 32;

/**
 * The one page-cursor codec of every paginated route (`/billing`, `/quarantine`,
 * `/enforcement/events`). A store hands back its own position string (a LastEvaluatedKey,
 * a shard); the API never shows it raw: it is sealed as `c1.<payload>.<mac>`, where the mac is
 * HMAC-SHA256 over the version, the listing's scope (route and month/day) and the payload.
 *
 * So a cursor is opaque and tamper-evident: a changed byte, a cursor from another listing
 * (another month, another route), another stage's key, or made-up text fails `open` with
 * {@link HttpCursorInvalidError} (400) before it reaches the store, and only a position the
 * store itself produced for the same query is ever passed back to it. The payload is not
 * encrypted: it is a table key of a listing the caller may read anyway.
 */
export class CursorCodec {
  private readonly key: Buffer;

  constructor(secret: string | Buffer) {
    this.key = typeof secret === "string" ? Buffer.from(secret, "utf8") : secret;
    if (this.key.length < MIN_CURSOR_SECRET_LENGTH) {
      throw new RangeError(`cursor secret must be at least ${MIN_CURSOR_SECRET_LENGTH} bytes`);
    }
  }

  /** Seals a store position for `scope`; undefined (no more pages) stays undefined. */
  seal(position: string | undefined, scope: string): string | undefined {
    if (position === undefined) return undefined;
    const payload = Buffer.from(position, "utf8").toString("base64url");
    return `${VERSION}.${payload}.${this.mac(scope, payload).toString("base64url")}`;
  }

  /** The store position of a cursor sealed for `scope`; undefined when no cursor was sent. */
  open(cursor: string | undefined, scope: string): string | undefined {
    if (cursor === undefined || cursor === "") return undefined;
    if (cursor.length > MAX_CURSOR_LENGTH) throw new HttpCursorInvalidError(`cursor longer than ${MAX_CURSOR_LENGTH} characters`);
    const parts = cursor.split(".");
    if (parts.length !== 3 || parts[0] !== VERSION) throw new HttpCursorInvalidError();
    const [, payload, mac] = parts;
    if (!/^[A-Za-z0-9_-]+$/.test(payload) || !/^[A-Za-z0-9_-]+$/.test(mac)) throw new HttpCursorInvalidError();
    const given = Buffer.from(mac, "base64url");
    const expected = this.mac(scope, payload);
    // Constant-time compare: the answer must not reveal how many bytes of a guess were right.
    if (given.length !== MAC_BYTES || !timingSafeEqual(given, expected)) throw new HttpCursorInvalidError();
    return Buffer.from(payload, "base64url").toString("utf8");
  }

  private mac(scope: string, payload: string): Buffer {
    return createHmac("sha256", this.key).update(`${VERSION}\n${scope}\n${payload}`).digest();
  }
}
