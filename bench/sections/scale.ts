import type { Report } from '../lib/report.js'
import type { ScenarioOptions } from '../lib/scenario.js'

export async function scaleSection(
  _report: Report,
  _dir: string,
  _clients: number,
  _load: ScenarioOptions,
): Promise<void> {
  throw new Error('not yet')
}
