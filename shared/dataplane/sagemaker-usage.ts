import { asRecord, count, textOfJson, type ReportedUsage } from "./usage";

/**
 * Token counts from self-hosted model servers behind SageMaker endpoints:
 * - DJL LMI / Hugging Face TGI: `{ generated_text, details: { generated_tokens, prompt_tokens?, prefill? } }`
 *   (TGI returns a one-element array). `details` is only present when the request asked for it
 *   (`parameters.details: true`); `prefill` only with `decoder_input_details: true`.
 * - OpenAI-style chat completions (LMI messages API, vLLM): `{ choices, usage: { prompt_tokens, completion_tokens,
 *   prompt_tokens_details?: { cached_tokens } } }` (vLLM with prefix caching reports the cached part).
 */
export interface ServerReply {
  reported: ReportedUsage;
  /** Generated text, for an estimate when the server gave no output count. */
  outputText: string;
}

export function parseServerReply(json: unknown): ServerReply {
  const root = Array.isArray(json) ? json[0] : json;
  const r = asRecord(root);
  if (!r) return { reported: {}, outputText: typeof root === "string" ? root : "" };
  const usage = asRecord(r.usage);
  if (usage) {
    // OpenAI-style `prompt_tokens` includes `prompt_tokens_details.cached_tokens`; the event
    // contract follows Bedrock (input excludes cache reads), so the cached part is split out.
    const prompt = count(usage.prompt_tokens);
    const cached = count(asRecord(usage.prompt_tokens_details)?.cached_tokens);
    const cacheRead = prompt !== undefined && cached !== undefined ? Math.min(cached, prompt) : undefined;
    return {
      reported: compact({
        inputTokens: prompt === undefined ? undefined : prompt - (cacheRead ?? 0),
        outputTokens: count(usage.completion_tokens),
        cacheReadInputTokens: cacheRead || undefined,
      }),
      outputText: chatText(r),
    };
  }
  const details = asRecord(r.details);
  const prefill = details && Array.isArray(details.prefill) ? details.prefill.length : undefined;
  return {
    reported: compact({
      inputTokens: count(details?.prompt_tokens) ?? prefill,
      outputTokens: count(details?.generated_tokens),
    }),
    outputText: typeof r.generated_text === "string" ? r.generated_text : chatText(r),
  };
}

function chatText(r: Record<string, unknown>): string {
  if (!Array.isArray(r.choices)) return "";
  return r.choices
    .map((c) => {
      const choice = asRecord(c);
      const message = asRecord(choice?.message) ?? asRecord(choice?.delta);
      return textOfJson(message?.content) + (typeof choice?.text === "string" ? choice.text : "");
    })
    .join("");
}

/**
 * Incremental parser for InvokeEndpointWithResponseStream payload parts. Parts are arbitrary
 * byte slices, so lines are re-assembled first. Understands LMI/TGI JSON lines
 * (`{"token": {...}, "generated_text": null|"...", "details": null|{...}}`, one line per token)
 * and server-sent events (`data: {...}`, `data: [DONE]`) of chat-completions streams.
 */
export class ServerStreamTally {
  private pending = "";
  private readonly decoder = new TextDecoder();
  /** Token events seen (LMI/TGI stream one line per generated token): an exact count of what was received. */
  tokenEvents = 0;
  reported: ReportedUsage = {};
  outputText = "";

  push(bytes: Uint8Array): void {
    this.pending += this.decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = this.pending.indexOf("\n")) >= 0) {
      const line = this.pending.slice(0, nl);
      this.pending = this.pending.slice(nl + 1);
      this.line(line);
    }
  }

  /** Flushes a last line that had no trailing newline. */
  end(): void {
    this.pending += this.decoder.decode();
    if (this.pending) this.line(this.pending);
    this.pending = "";
  }

  private line(raw: string): void {
    let line = raw.trim();
    if (!line) return;
    if (line.startsWith("data:")) line = line.slice(5).trim();
    if (!line.startsWith("{")) return; // "[DONE]", SSE comments, event names
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return;
    }
    const r = asRecord(json);
    if (!r) return;
    const token = asRecord(r.token);
    if (token) {
      this.tokenEvents++;
      if (token.special !== true && typeof token.text === "string") this.outputText += token.text;
    }
    if (asRecord(r.usage) || asRecord(r.details)) {
      const reply = parseServerReply(r);
      this.reported = { ...this.reported, ...reply.reported };
    }
    if (Array.isArray(r.choices)) this.outputText += chatText(r);
  }

  /** What the stream says so far; the token-event count stands in for a missing output count. */
  usage(): ReportedUsage {
    const out = { ...this.reported };
    if (out.outputTokens === undefined && this.tokenEvents > 0) out.outputTokens = this.tokenEvents;
    return out;
  }
}

function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
