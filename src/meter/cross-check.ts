/**
 * The CLI's own cost figure as a cross-check of the meter: pure. The meter (what the gateway recorded,
 * priced on the served model) is what is charged; the CLI's `total_cost_usd` delta is priced by the CLI on
 * the model it asked for. A gap above {@link CROSS_CHECK_TOLERANCE} of the larger figure means a price
 * table out of date, a served model other than the requested one, or a response the meter missed: worth a
 * warning, never a change of the charge.
 */

/** Relative difference above which the two figures are said to disagree (1%). */
export const CROSS_CHECK_TOLERANCE = 0.01;

/** Both figures of one turn, in micro-dollars, and whether they disagree. */
export interface CostCrossCheck {
  meterMicroUsd: number;
  cliMicroUsd: number;
  /** |meter − cli| / max(meter, cli); 0 when both are 0. */
  relativeDiff: number;
  disagree: boolean;
}

/**
 * Compares the meter's micro-dollars with the CLI's figure in USD (rounded to micro-dollars first, so
 * float noise in the CLI's sum never counts as a difference).
 */
export function crossCheckCost(meterMicroUsd: number, cliUsd: number): CostCrossCheck {
  const cliMicroUsd = Math.round(cliUsd * 1e6);
  const larger = Math.max(meterMicroUsd, cliMicroUsd);
  const relativeDiff = larger === 0 ? 0 : Math.abs(meterMicroUsd - cliMicroUsd) / larger;
  return { meterMicroUsd, cliMicroUsd, relativeDiff, disagree: relativeDiff > CROSS_CHECK_TOLERANCE };
}
