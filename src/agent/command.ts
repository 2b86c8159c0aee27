import { Command } from 'commander'

/** `certbound agent`: placeholder until the agent lands (issue 4). */
export function agentCommand(): Command {
  return new Command('agent').description('workload agent: enrol, renew and refresh (not yet built)').action(() => {
    throw new Error('certbound agent is not built yet')
  })
}
