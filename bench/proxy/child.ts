/**
 * Shared by the benchmark's server processes: tell the runner where we listen (over the IPC
 * channel it opened), and exit when the runner goes away, so no server outlives a killed run.
 */
export function announce(url: string): void {
  if (process.send === undefined) {
    console.error(url);
    return;
  }
  process.send({ url });
  process.once('disconnect', () => process.exit(0));
}
