import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { ObjectReader } from "../ports";

/**
 * Reads a log object with GetObject. NOTE: `@aws-sdk/client-s3` is not a direct dependency of
 * this package yet (it resolves only through `sst`); it has been requested.
 */
export class S3ObjectReader implements ObjectReader {
  constructor(private readonly client: S3Client) {}

  async read(bucket: string, key: string): Promise<Uint8Array> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (!out.Body) return new Uint8Array();
    return out.Body.transformToByteArray();
  }
}
