import { Sha256 } from "@aws-crypto/sha256-js";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { SignatureV4, type SignatureV4Init } from "@smithy/signature-v4";

export interface SignedFetchOptions {
  /** Region of the API, e.g. `us-west-2` (part of the credential scope). */
  region: string;
  /** Signing name of the service. API Gateway (REST and HTTP APIs): `execute-api`. */
  service?: string;
  /**
   * Static credentials or a provider. Default: the SDK's default chain (`defaultProvider()`:
   * environment, SSO/ini profile, web identity, ECS/EC2 role), resolved on first use and
   * refreshed by the provider before they expire.
   */
  credentials?: SignatureV4Init["credentials"];
  /** The fetch that sends the signed request. Default: `globalThis.fetch`, looked up per call. */
  fetch?: typeof fetch;
}

/**
 * A `fetch` that signs every request with AWS Signature Version 4 (header auth), for APIs
 * behind IAM auth such as the deployed decision route (`GET /tenants/{id}/decision`):
 * `new HttpDecisionSource({ baseUrl, fetch: signedFetch({ region, service: "execute-api" }) })`.
 *
 * Signed: method, path, query string, body hash and every header given plus `host`; the caller's
 * session token (temporary credentials) goes in `x-amz-security-token`. Headers the runtime adds
 * later (user-agent, accept-encoding, connection) are not signed, which SigV4 allows. The body is
 * read into memory to be hashed, so this is for small API requests, not uploads.
 */
export function signedFetch(opts: SignedFetchOptions): typeof fetch {
  const signer = new SignatureV4({
    region: opts.region,
    service: opts.service ?? "execute-api",
    credentials: opts.credentials ?? defaultProvider(),
    sha256: Sha256,
  });

  const signed = async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]): Promise<Response> => {
    // A Request normalises every input form (string, URL, Request + init) to one method,
    // header list and body, so what is signed is what is sent.
    const request = new Request(input, init);
    const url = new URL(request.url);
    const body = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => {
      headers[name] = value;
    });
    // `host` must be signed; fetch sends `url.host` (default port omitted), so sign exactly that.
    headers.host = url.host;

    const query: Record<string, string | string[]> = {};
    for (const [name, value] of url.searchParams) {
      const previous = query[name];
      query[name] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
    }

    const out = await signer.sign({
      method: request.method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      // Already percent-encoded once by URL; the signer encodes it a second time, as SigV4
      // requires for every service except S3.
      path: url.pathname,
      query,
      headers,
      body,
    });

    // fetch sets Host from the URL itself (the same value); it is not passed as a header.
    const { host: _host, ...sendHeaders } = out.headers;
    const send = opts.fetch ?? globalThis.fetch;
    return send(url.href, { method: request.method, headers: sendHeaders, body, signal: init?.signal ?? request.signal, redirect: request.redirect });
  };
  return signed as typeof fetch;
}
