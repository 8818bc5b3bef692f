/**
 * Hands each repo event to the judge of its source (verdict-firehose.ts, verdict-jetstream.ts);
 * what they share is in verdict.ts, the repo's sync state in repo-state.ts.
 */
import type { Effect } from '../db/effects.ts'
import type { RepoEvent } from '../sources/events.ts'
import { Verdicts, type RepoEventsOptions } from './verdict.ts'
import { FirehoseVerdicts } from './verdict-firehose.ts'
import { JetstreamVerdicts } from './verdict-jetstream.ts'

export type { RepoEventCounts, RepoEventsOptions } from './verdict.ts'

export class RepoEvents {
  private readonly shared: Verdicts
  private readonly firehose: FirehoseVerdicts
  private readonly jetstream: JetstreamVerdicts

  constructor(opts: RepoEventsOptions) {
    this.shared = new Verdicts(opts)
    this.firehose = new FirehoseVerdicts(this.shared)
    this.jetstream = new JetstreamVerdicts(this.shared)
  }

  /** Effects of one event, in order; throws for a transient failure (nothing is pushed then). */
  async process(did: string, evt: RepoEvent): Promise<Effect[]> {
    const out: Effect[] = []
    switch (evt.type) {
      case 'commit':
        await this.firehose.commit(evt, out)
        break
      case 'sync':
        await this.firehose.sync(evt, out)
        break
      case 'signature-check':
        await this.firehose.signatureCheck(did, out)
        break
      case 'identity':
        await this.shared.identity(evt, out)
        break
      case 'account':
        this.shared.account(evt, out)
        break
      case 'jetstream-commit':
        await this.jetstream.commit(evt, out)
        break
      case 'jetstream-account':
        await this.jetstream.account(evt, out)
        break
      case 'jetstream-sync':
        await this.jetstream.sync(evt, out)
        break
    }
    return out
  }

  /** Effects of an event whose repo went to a resync instead (its queue overflowed). */
  resync(did: string, reason: string, out: Effect[]): void {
    this.shared.resync(did, reason, out)
  }
}
