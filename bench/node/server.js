// Reference tus 1.0 server for the benchmark: @tus/server storing with @tus/file-store.
// Usage: node server.js PORT DIRECTORY (listens on 127.0.0.1 only).
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [port, directory] = process.argv.slice(2);
const server = new Server({
  path: "/files",
  datastore: new FileStore({ directory }),
});
server.listen({ host: "127.0.0.1", port: Number(port) }, () => {
  console.log(`tus reference listening on 127.0.0.1:${port}`);
});
