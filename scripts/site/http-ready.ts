/** Waiting for a part to answer on HTTP: polled, ended by the part's exit (the signal) or a deadline. */
export async function httpReady(name: string, url: string, signal: AbortSignal, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (signal.aborted) throw new Error(`${name} went away while starting`);
    try {
      const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]) });
      // 503: up, but something it needs is not yet (a degraded cloud still serves the kiosks' page)
      if (res.status < 500 || res.status === 503) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} did not answer on ${url} within ${timeoutMs / 1000} s`);
}
