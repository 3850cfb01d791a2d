// The reference tus 1.0 server on the object store: @tus/server storing with @tus/s3-store,
// as its users deploy it (its defaults: 8 MiB parts, the upload's state in the bucket's
// .info objects, each part spooled to the temp dir before it is sent).
// Usage: node s3_server.js PORT BUCKET (listens on 127.0.0.1 only); the store's endpoint and
// key pair from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_DEFAULT_REGION, the parts' temp dir from TMPDIR.
import { S3Store } from "@tus/s3-store";
import { Server } from "@tus/server";

const [port, bucket] = process.argv.slice(2);
const env = process.env;
const server = new Server({
  path: "/files",
  datastore: new S3Store({
    s3ClientConfig: {
      bucket,
      endpoint: env.AWS_ENDPOINT_URL,
      region: env.AWS_DEFAULT_REGION,
      forcePathStyle: true,
      credentials: {
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      },
    },
  }),
});
server.listen({ host: "127.0.0.1", port: Number(port) }, () => {
  console.log(`tus reference on ${bucket} listening on 127.0.0.1:${port}`);
});
