/** A WHATWG ReadableStream (a File's or a fetch body's) as the AsyncIterable the backup functions take. */
export async function* readableChunks(stream: ReadableStream<Uint8Array>, onBytes: (n: number) => void = () => {}): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onBytes(value.length);
      yield value;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
