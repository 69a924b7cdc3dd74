/** File operations or object requests in flight at once: enough to keep the disk and the threadpool busy. */
export const PARALLEL = 32;

/** Runs `work` on every item, at most `limit` at a time; the results in the items' order. */
export async function mapLimit<T, R>(items: Iterable<T>, limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  const iterator = items[Symbol.iterator]();
  let count = 0;
  const worker = async (): Promise<void> => {
    for (let next = iterator.next(); !next.done; next = iterator.next()) {
      const at = count++;
      results[at] = await work(next.value);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}
