import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import type { ExportSink } from "../ports";

/** Writes export files under a local directory (CLI, local stack). */
export class LocalDirectorySink implements ExportSink {
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  locate(path: string): string {
    const file = resolve(join(this.root, path));
    if (!file.startsWith(this.root + sep)) throw new RangeError(`export path escapes the export directory: ${path}`);
    return file;
  }

  async put(path: string, body: string): Promise<void> {
    const file = this.locate(path);
    await mkdir(dirname(file), { recursive: true });
    // write then rename: a reader never sees a half-written file, a rerun replaces it whole
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, body, "utf8");
    await rename(tmp, file);
  }
}
