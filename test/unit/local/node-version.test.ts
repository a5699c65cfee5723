import { describe, expect, it } from "vitest";
import { announceNodeVersion, isSupportedNode, nodeVersionNotice } from "../../../local/node-version";

describe("supported Node range (^22.22.2 || >=24)", () => {
  it("accepts Node 22 from 22.22.2 and Node 24 on, refuses the rest", () => {
    expect(["v22.22.2", "v22.23.0", "v24.0.0", "v25.1.0"].filter(isSupportedNode)).toEqual(["v22.22.2", "v22.23.0", "v24.0.0", "v25.1.0"]);
    expect(["v22.22.1", "v22.12.0", "v23.11.0", "v20.20.2", "v18.20.0"].filter(isSupportedNode)).toEqual([]);
  });

  it("says in one line why Node 20 still runs and what to expect", () => {
    const notice = nodeVersionNotice("v20.20.2")!;
    expect(notice.split("\n")).toHaveLength(1);
    expect(notice).toContain("Node v20.20.2 is outside the supported range ^22.22.2 || >=24");
    expect(notice).toContain("runs with the locked dependencies");
    expect(nodeVersionNotice("v18.20.0")).toContain("expect failures");
    expect(nodeVersionNotice("v22.22.2")).toBeUndefined();
  });

  it("prints nothing and changes nothing on a supported Node", () => {
    const printed: string[] = [];
    expect(announceNodeVersion("v24.1.0", (l) => printed.push(l))).toEqual({});
    expect(printed).toEqual([]);
  });

  it("on an unsupported Node, silences the AWS SDK's own warning block for itself and for child processes", () => {
    const env = announceNodeVersion("v20.20.2", () => undefined);
    expect(env).toEqual({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" });
    expect(process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED).toBe("true");
  });
});
