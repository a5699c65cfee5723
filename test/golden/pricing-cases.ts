/**
 * Golden pricing cases, written by hand from AWS Bedrock list prices (USD per 1M tokens,
 * https://aws.amazon.com/bedrock/pricing/ as read on the dates given), NOT computed by the
 * code under test. Each expected figure is the sum the comment spells out.
 *
 * Price bases used (per 1M tokens; in / out / cache read / cache write 5m / cache write 1h):
 * - seed (Oregon, 2024-10-22, seed-notes.md): Claude 3.5 Sonnet 3 / 15, Claude 3 Haiku 0.25 / 1.25, Llama 3.1 70B 0.99 / 0.99
 * - AWS list 2026-12 (current page, matching @pydantic/genai-prices 0.1.8):
 *   Claude Haiku 4.5   global 1 / 5 / 0.10 / 1.25 / 2      geo & in-region 1.10 / 5.50 / 0.11 / 1.375 / 2.20
 *   Claude Sonnet 4.5  global 3 / 15 / 0.30 / 3.75 / 6     geo & in-region 3.30 / 16.50 / 0.33 / 4.125 / 6.60
 *                      above 200K input: global 6 / 22.50 / 0.60 / 7.50 / 12, geo 6.60 / 24.75 / 0.66 / 8.25 / 13.20
 *   Claude Sonnet 4    3 / 15 (every scope), above 200K input 6 / 22.50
 *   Claude Opus 4.1 15 / 75; Opus 4.5 global 5 / 25, geo 5.50 / 27.50; Sonnet 4.6 geo 3.30 / 16.50
 *   Claude 3.5 Haiku 0.80 / 4 / 0.08; Claude 3.7 Sonnet 3 / 15
 *   Nova Micro 0.035 / 0.14 / 0.00875; Lite 0.06 / 0.24 / 0.015; Pro 0.80 / 3.20 / 0.20; Premier 2.50 / 12.50;
 *   Nova 2 Lite global 0.30 / 2.50, geo 0.33 / 2.75 (cache writes: billed as input)
 *   Llama 3.1 70B / 3.2 90B / 3.3 70B 0.72 / 0.72 (the 0.72 seen in the source published 2026-09-23); Llama 3.1 8B 0.22 / 0.22;
 *   Llama 4 Maverick 0.24 / 0.97; Llama 4 Scout 0.17 / 0.66
 *   gpt-oss-120b 0.15 / 0.60; gpt-oss-20b 0.07 / 0.30; Qwen3 32B 0.15 / 0.60; DeepSeek-R1 1.35 / 5.40;
 *   Pixtral Large 2 / 6; Palmyra X5 0.60 / 6
 *   service tiers: Priority = Standard x 1.75, Flex = Standard x 0.5 (gpt-oss-120b Priority 0.2625 / 1.05, Flex 0.075 / 0.30)
 *   embeddings (input only): Titan Text Embeddings V2 0.02, Titan Text Embeddings V1 0.10, Cohere Embed English v3 0.10
 */
export interface GoldenCase {
  name: string;
  modelId: string;
  day: string;
  tier?: "default" | "priority" | "flex" | "reserved";
  invokedModelId?: string;
  in: number;
  out: number;
  cacheRead?: number;
  cacheWrite?: number;
  cacheWrite1h?: number;
  /** Expected USD, or "unpriced" (no list price: counted unpriced) or "fixed-cost" (reserved capacity). */
  usd: number | "unpriced" | "fixed-cost";
}

const NOW = "2026-12-01";

export const GOLDEN_CASES: readonly GoldenCase[] = [
  // seed: the talk's prices on the talk's day (307 in, 533 out per request)
  { name: "seed Claude 3.5 Sonnet", modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0", day: "2024-10-22", in: 307, out: 533, usd: 0.008916 }, // 307*3 + 533*15 = 921 + 7995 micro
  { name: "seed Claude 3 Haiku", modelId: "anthropic.claude-3-haiku-20240307-v1:0", day: "2024-10-22", in: 307, out: 533, usd: 0.000743 }, // 76.75 + 666.25
  { name: "seed Llama 3.1 70B", modelId: "meta.llama3-1-70b-instruct-v1:0", day: "2024-10-22", in: 307, out: 533, usd: 0.0008316 }, // 840 * 0.99
  { name: "seed Claude 3.5 Sonnet v2", modelId: "anthropic.claude-3-5-sonnet-20241022-v2:0", day: "2024-10-22", in: 1000, out: 1000, usd: 0.018 },
  { name: "Llama 3.1 70B the day before the source's new price", modelId: "meta.llama3-1-70b-instruct-v1:0", day: "2026-09-22", in: 1000, out: 1000, usd: 0.00198 },
  { name: "Llama 3.1 70B today", modelId: "meta.llama3-1-70b-instruct-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.00144 },

  // Claude Haiku 4.5: scope
  { name: "Haiku 4.5 global", modelId: "global.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.006 }, // 1 + 5 milli
  { name: "Haiku 4.5 us.", modelId: "us.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0066 },
  { name: "Haiku 4.5 eu.", modelId: "eu.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0066 },
  { name: "Haiku 4.5 apac.", modelId: "apac.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0066 },
  { name: "Haiku 4.5 jp.", modelId: "jp.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0066 },
  { name: "Haiku 4.5 in-region", modelId: "anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0066 },
  { name: "Haiku 4.5 us. profile ARN", modelId: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0066 },
  // cache: 1000*1.1 + 500*5.5 + 10000*0.11 + 2000*1.375 = 1100 + 2750 + 1100 + 2750 micro
  { name: "Haiku 4.5 us. cache read + 5m write", modelId: "us.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 500, cacheRead: 10000, cacheWrite: 2000, usd: 0.0077 },
  // 1000*1 + 500*5 + 1000*1.25 + 1000*2 = 1000 + 2500 + 1250 + 2000 micro
  { name: "Haiku 4.5 global 5m + 1h writes", modelId: "global.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, in: 1000, out: 500, cacheWrite: 2000, cacheWrite1h: 1000, usd: 0.00675 },
  { name: "Haiku 4.5 flex: no such price, loud", modelId: "us.anthropic.claude-haiku-4-5-20251001-v1:0", day: NOW, tier: "flex", in: 1000, out: 1000, usd: "unpriced" },

  // Claude Sonnet 4.5
  { name: "Sonnet 4.5 global", modelId: "global.anthropic.claude-sonnet-4-5-20250929-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.018 },
  { name: "Sonnet 4.5 us.", modelId: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0198 },
  { name: "Sonnet 4.5 eu.", modelId: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0198 },
  // 2000*3.3 + 1000*16.5 + 50000*0.33 + 6000*4.125 + 4000*6.6 = 6600 + 16500 + 16500 + 24750 + 26400 micro
  { name: "Sonnet 4.5 us. all cache classes", modelId: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", day: NOW, in: 2000, out: 1000, cacheRead: 50000, cacheWrite: 10000, cacheWrite1h: 4000, usd: 0.09075 },
  // total input 150000 + 60000 = 210000 > 200K: 150000*6 + 60000*0.6 + 2000*22.5 = 900000 + 36000 + 45000 micro
  { name: "Sonnet 4.5 global long context (cache counts toward 200K)", modelId: "global.anthropic.claude-sonnet-4-5-20250929-v1:0", day: NOW, in: 150000, out: 2000, cacheRead: 60000, usd: 0.981 },
  // exactly 200K is not above: 200000*3 + 1000*15
  { name: "Sonnet 4.5 global at exactly 200K input", modelId: "global.anthropic.claude-sonnet-4-5-20250929-v1:0", day: NOW, in: 200000, out: 1000, usd: 0.615 },
  // 250000*6.6 + 1000*24.75
  { name: "Sonnet 4.5 us. long context", modelId: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", day: NOW, in: 250000, out: 1000, usd: 1.67475 },
  { name: "Sonnet 4 global", modelId: "global.anthropic.claude-sonnet-4-20250514-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.018 },
  { name: "Sonnet 4 us. (no geo premium)", modelId: "us.anthropic.claude-sonnet-4-20250514-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.018 },
  // 300000*6 + 1000*22.5
  { name: "Sonnet 4 us. long context", modelId: "us.anthropic.claude-sonnet-4-20250514-v1:0", day: NOW, in: 300000, out: 1000, usd: 1.8225 },
  { name: "Sonnet 4.6 us.", modelId: "us.anthropic.claude-sonnet-4-6-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.0198 },
  { name: "Opus 4.1 us.", modelId: "us.anthropic.claude-opus-4-1-20250805-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.09 },
  { name: "Opus 4.5 global", modelId: "global.anthropic.claude-opus-4-5-20251101-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.03 },
  { name: "Opus 4.5 us.", modelId: "us.anthropic.claude-opus-4-5-20251101-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.033 },
  { name: "Claude 3.7 Sonnet us.", modelId: "us.anthropic.claude-3-7-sonnet-20250219-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.018 },
  // 1000*0.8 + 1000*4 + 10000*0.08
  { name: "Claude 3.5 Haiku us. with cache read", modelId: "us.anthropic.claude-3-5-haiku-20241022-v1:0", day: NOW, in: 1000, out: 1000, cacheRead: 10000, usd: 0.0056 },

  // Amazon Nova
  { name: "Nova Pro in-region", modelId: "amazon.nova-pro-v1:0", day: NOW, in: 10000, out: 2000, usd: 0.0144 }, // 8000 + 6400 micro
  { name: "Nova Pro us. cache read", modelId: "us.amazon.nova-pro-v1:0", day: NOW, in: 10000, out: 2000, cacheRead: 20000, usd: 0.0184 }, // + 4000
  // 10000*0.06 + 2000*0.24 + 5000*0.015 + 3000*0.06 = 600 + 480 + 75 + 180 micro
  { name: "Nova Lite us. cache read + write", modelId: "us.amazon.nova-lite-v1:0", day: NOW, in: 10000, out: 2000, cacheRead: 5000, cacheWrite: 3000, usd: 0.001335 },
  { name: "Nova Micro", modelId: "amazon.nova-micro-v1:0", day: NOW, in: 100000, out: 10000, usd: 0.0049 }, // 3500 + 1400
  { name: "Nova Premier us.", modelId: "us.amazon.nova-premier-v1:0", day: NOW, in: 10000, out: 1000, usd: 0.0375 }, // 25000 + 12500
  { name: "Nova 2 Lite global", modelId: "global.amazon.nova-2-lite-v1:0", day: NOW, in: 10000, out: 1000, usd: 0.0055 }, // 3000 + 2500
  { name: "Nova 2 Lite us.", modelId: "us.amazon.nova-2-lite-v1:0", day: NOW, in: 10000, out: 1000, usd: 0.00605 }, // 3300 + 2750
  { name: "Nova 2 Lite us. priority", modelId: "us.amazon.nova-2-lite-v1:0", day: NOW, tier: "priority", in: 10000, out: 1000, usd: 0.0105875 }, // 6050 * 1.75
  { name: "Nova 2 Lite global flex", modelId: "global.amazon.nova-2-lite-v1:0", day: NOW, tier: "flex", in: 10000, out: 1000, usd: 0.00275 }, // 5500 * 0.5

  // Meta Llama
  { name: "Llama 3.3 70B us.", modelId: "us.meta.llama3-3-70b-instruct-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.00144 },
  { name: "Llama 3.2 90B us.", modelId: "us.meta.llama3-2-90b-instruct-v1:0", day: NOW, in: 1000, out: 1000, usd: 0.00144 },
  { name: "Llama 3.1 8B", modelId: "meta.llama3-1-8b-instruct-v1:0", day: NOW, in: 10000, out: 10000, usd: 0.0044 },
  { name: "Llama 4 Maverick us.", modelId: "us.meta.llama4-maverick-17b-instruct-v1:0", day: NOW, in: 10000, out: 10000, usd: 0.0121 }, // 2400 + 9700
  { name: "Llama 4 Scout us.", modelId: "us.meta.llama4-scout-17b-instruct-v1:0", day: NOW, in: 10000, out: 10000, usd: 0.0083 }, // 1700 + 6600

  // service tiers
  { name: "gpt-oss-120b default", modelId: "openai.gpt-oss-120b-1:0", day: NOW, in: 100000, out: 10000, usd: 0.021 }, // 15000 + 6000
  { name: "gpt-oss-120b explicit default", modelId: "openai.gpt-oss-120b-1:0", day: NOW, tier: "default", in: 100000, out: 10000, usd: 0.021 },
  { name: "gpt-oss-120b priority", modelId: "openai.gpt-oss-120b-1:0", day: NOW, tier: "priority", in: 100000, out: 10000, usd: 0.03675 }, // 26250 + 10500
  { name: "gpt-oss-120b flex", modelId: "openai.gpt-oss-120b-1:0", day: NOW, tier: "flex", in: 100000, out: 10000, usd: 0.0105 }, // 7500 + 3000
  { name: "gpt-oss-20b default", modelId: "openai.gpt-oss-20b-1:0", day: NOW, in: 100000, out: 10000, usd: 0.01 }, // 7000 + 3000
  { name: "gpt-oss-20b flex", modelId: "openai.gpt-oss-20b-1:0", day: NOW, tier: "flex", in: 100000, out: 10000, usd: 0.005 },
  { name: "Qwen3 32B priority", modelId: "qwen.qwen3-32b-v1:0", day: NOW, tier: "priority", in: 100000, out: 10000, usd: 0.03675 },
  { name: "reserved tier is fixed-cost capacity", modelId: "openai.gpt-oss-120b-1:0", day: NOW, tier: "reserved", in: 100000, out: 10000, usd: "fixed-cost" },

  // other providers
  { name: "DeepSeek-R1 us.", modelId: "us.deepseek.r1-v1:0", day: NOW, in: 10000, out: 10000, usd: 0.0675 }, // 13500 + 54000
  { name: "Pixtral Large us.", modelId: "us.mistral.pixtral-large-2502-v1:0", day: NOW, in: 10000, out: 1000, usd: 0.026 }, // 20000 + 6000
  { name: "Palmyra X5 us.", modelId: "us.writer.palmyra-x5-v1:0", day: NOW, in: 10000, out: 1000, usd: 0.012 }, // 6000 + 6000

  // embeddings: input only
  { name: "Titan Text Embeddings V2", modelId: "amazon.titan-embed-text-v2:0", day: NOW, in: 10000, out: 0, usd: 0.0002 },
  { name: "Titan Text Embeddings V1", modelId: "amazon.titan-embed-text-v1", day: NOW, in: 10000, out: 0, usd: 0.001 },
  { name: "Cohere Embed English v3", modelId: "cohere.embed-english-v3", day: NOW, in: 5000, out: 0, usd: 0.0005 },

  // prompt routing: the invoked model is priced, never the router
  {
    name: "prompt router priced by invokedModelId",
    modelId: "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1",
    invokedModelId: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
    day: NOW,
    in: 1000,
    out: 1000,
    usd: 0.0066,
  },
  { name: "prompt router without invokedModelId: loud", modelId: "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1", day: NOW, in: 1000, out: 1000, usd: "unpriced" },
  { name: "unknown model: loud", modelId: "acme.frontier-9-v1:0", day: NOW, in: 1000, out: 1000, usd: "unpriced" },
];
