// A real tus client for the benchmark: tus-js-client uploads one slice of a file in chunks,
// streamed from the disk as a Node app streams it, on one connection kept open for every
// request, as browsers and Node's keep-alive agents keep it.
//   node tus_upload.mjs ENDPOINT FILE OFFSET SIZE CHUNK_SIZE NAME
// Prints one JSON line: the seconds from the first request to the last PATCH's answer, the
// upload's URL, the MD5 the server answered (uploadsvc's Upload-MD5; null from @tus/server),
// and the number of connections its requests needed.
import { createReadStream } from 'node:fs'
import http from 'node:http'
import { DefaultHttpStack, Upload } from 'tus-js-client'

const [endpoint, path, offset, size, chunkSize, filename] = process.argv.slice(2)
const start = Number(offset)
// maxSockets 1: one stream, so every request waits for the same connection.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
let connections = 0
let md5 = null

const started = performance.now()
const upload = await new Promise((resolve, reject) => {
  const upload = new Upload(createReadStream(path, { start, end: start + Number(size) - 1 }), {
    endpoint,
    chunkSize: Number(chunkSize),
    metadata: { filename },
    httpStack: new DefaultHttpStack({ agent }),
    retryDelays: null, // a failed request fails the run instead of hiding in its figure
    onAfterResponse: (req, res) => {
      if (!req.getUnderlyingObject().reusedSocket) connections += 1
      if (req.getMethod() === 'PATCH') md5 = res.getHeader('Upload-MD5') ?? md5
    },
    onSuccess: () => resolve(upload),
    onError: reject
  })
  upload.start()
})
const seconds = (performance.now() - started) / 1000
agent.destroy()
console.log(JSON.stringify({ seconds, url: upload.url, md5, connections }))
