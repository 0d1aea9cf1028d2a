/**
 * The delay before the next attempt after `attempts` failed ones: intervals[attempts-1], the last interval
 * repeating (CONTRACT `queue.retry_intervals`).
 */
export function retrySchedule(intervalsMs: readonly number[], attempts: number): number {
  if (intervalsMs.length === 0) throw new RangeError("retrySchedule: no retry intervals");
  const i = Math.min(Math.max(attempts, 1), intervalsMs.length) - 1;
  return intervalsMs[i];
}
