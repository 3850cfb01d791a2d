// Uploads a file to a tus endpoint with tus-js-client, the way Uppy and browsers do.
//   node tus_client.mjs ENDPOINT FILE NAME parallel  -> parallelUploads (concatenation)
//   node tus_client.mjs ENDPOINT FILE NAME resume    -> abort mid-upload, then resume
//   node tus_client.mjs ENDPOINT FILE NAME resume ietf-draft-05  -> the same in the IETF
//                                                                   draft (interop 6)
// Prints one JSON line: the upload URL and, for resume, the offset the server resumed from.
import { readFileSync } from 'node:fs'
import { Upload } from 'tus-js-client'

const [endpoint, path, filename, mode, protocol = 'tus-v1'] = process.argv.slice(2)
const data = readFileSync(path)
const common = { metadata: { filename }, retryDelays: [100, 300, 1000], protocol }

function run (options) {
  return new Promise((resolve, reject) => {
    const upload = new Upload(data, {
      ...common,
      ...options,
      onSuccess: () => resolve(upload),
      onError: reject
    })
    upload.start()
  })
}

async function parallel () {
  const upload = await run({ endpoint, parallelUploads: 3 })
  return { url: upload.url }
}

async function resume () {
  // First attempt: abort while a PATCH body is on its way, as a closed laptop lid would.
  const url = await new Promise((resolve, reject) => {
    const upload = new Upload(data, {
      ...common,
      endpoint,
      chunkSize: 512 * 1024,
      onProgress: (sent, total) => {
        if (sent > total / 3 && upload.url) {
          upload.abort().then(() => resolve(upload.url), reject)
        }
      },
      onSuccess: () => reject(new Error('finished before it could be aborted')),
      onError: reject
    })
    upload.start()
  })
  let resumedFrom = null
  await run({
    uploadUrl: url,
    chunkSize: 512 * 1024,
    onAfterResponse: (req, res) => {
      if (req.getMethod() === 'HEAD' && resumedFrom === null) {
        resumedFrom = Number(res.getHeader('Upload-Offset'))
      }
    }
  })
  return { url, resumedFrom }
}

const result = mode === 'parallel' ? await parallel() : await resume()
console.log(JSON.stringify(result))
