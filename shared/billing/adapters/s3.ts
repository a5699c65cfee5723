import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { ExportSink } from "../ports";

/**
 * Writes export files to an S3 bucket (the stack's versioned billing-exports bucket). The key
 * is the export path, so a rerun for the same month replaces the same objects (the bucket's
 * versioning keeps what was replaced).
 */
export class S3ExportSink implements ExportSink {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly prefix = "",
  ) {}

  locate(path: string): string {
    return `s3://${this.bucket}/${this.key(path)}`;
  }

  async put(path: string, body: string, contentType: string): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.key(path),
        Body: body,
        ContentType: contentType,
      }),
    );
  }

  private key(path: string): string {
    if (path.split("/").some((segment) => segment === ".." || segment === "")) {
      throw new RangeError(`invalid export path: ${path}`);
    }
    return `${this.prefix}${path}`;
  }
}

/** The sink the scheduled job uses on Lambda (region from the runtime config). */
export function s3ExportSink(bucket: string, region: string): S3ExportSink {
  return new S3ExportSink(new S3Client({ region }), bucket);
}
