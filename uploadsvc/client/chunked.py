"""Upload one file through the chunk API: ask which chunks the server has, send the others
in parallel, then ask it to merge and verify."""
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from .files import Source
from .http import Api, ApiError, ClientError, ConnectionDropped

# complete-upload names chunks the server lost (e.g. removed by hand); re-send them this often.
COMPLETE_ROUNDS = 3


@dataclass(frozen=True)
class Options:
    parallel: int
    retries: int
    backoff: float
    timeout: float = 120.0


@dataclass(frozen=True)
class Result:
    """What the server made of one file."""

    path: str
    md5: str
    size: int
    sent: int
    total: int


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionDropped) or (isinstance(exc, ApiError) and exc.retryable)


def retrying(options: Options) -> Retrying:
    """Per-call retries for what the transport cannot retry: a merge of the same upload
    running on the server (409 merge_in_progress) and connections that broke mid-answer."""
    return Retrying(retry=retry_if_exception(_retryable),
                    stop=stop_after_attempt(options.retries + 1),
                    wait=wait_exponential(multiplier=options.backoff, max=30), reraise=True)


def upload(api: Api, source: Source, md5: str, options: Options,
           progress: Callable[[int], object], resumed: Callable[[int], object]) -> Result:
    """Upload source (whose MD5 is md5) unless the server has it; progress(n) per n bytes
    sent, resumed(n) for the n bytes the server already had."""
    total = source.total_chunks
    answer = retrying(options)(api.check_chunks, md5, source.name, total)
    stored = set(answer.get("uploadedChunks", []))
    resumed(sum(source.chunk_length(i) for i in stored if i < total))
    sent = 0
    if not answer.get("completed"):
        sent = send_chunks(api, source, md5, sorted(set(range(total)) - stored), options,
                           progress)
    for _ in range(COMPLETE_ROUNDS):
        try:
            answer = retrying(options)(api.complete, md5, source.name, total)
            break
        except ApiError as exc:
            missing = exc.body.get("missingChunks")
            if exc.code != "missing_chunks" or not isinstance(missing, list):
                raise
            sent += send_chunks(api, source, md5, missing, options, lambda n: None)
    else:
        raise ClientError("the server kept losing chunks; nothing was completed")
    if answer.get("md5", "").lower() != md5:
        raise ClientError(f"the server's MD5 {answer.get('md5')} differs from the file's {md5}")
    return Result(answer["path"], md5, answer.get("size", source.size), sent, total)


def send_chunks(api: Api, source: Source, md5: str, indices: list[int], options: Options,
                progress: Callable[[int], object]) -> int:
    """Send chunks with `parallel` workers, each holding one chunk in memory; stops at the
    first failure (after its retries) and lets no new chunk start once one has failed."""
    failed = threading.Event()

    def send(index: int) -> int:
        if failed.is_set():
            return 0
        data = source.read_chunk(index)
        try:
            retrying(options)(api.upload_chunk, md5, source.name, source.total_chunks,
                              index, data)
        except BaseException:
            failed.set()
            raise
        progress(len(data))
        return 1

    pool = ThreadPoolExecutor(max_workers=options.parallel, thread_name_prefix="chunk")
    try:
        futures = [pool.submit(send, index) for index in indices]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                raise future.exception()
        return sum(future.result() for future in futures)
    finally:
        # On Ctrl-C the caller exits at once; chunks not yet started are never sent.
        pool.shutdown(wait=False, cancel_futures=True)
