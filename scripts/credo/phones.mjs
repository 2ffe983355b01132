// Real Credo-TS 0.5.19 wallets ("phones") for acaload's fidelity test: the same scenario as
// acaload's edge agents, so a mediator can be watched serving both. In one node process:
//   1. PHONES wallets connect to the mediator from its invitation and get mediation granted
//      (SPAWN_PER_SEC a second; 0: the first alone, then the rest at once), which also starts
//      their message pickup;
//   2. phones pair up through the mediator (even ones invite, odd ones accept);
//   3. each phone sends MESSAGES basic messages to its peer, one at a time, each awaited at
//      the peer, THINK_MS apart;
//   4. all shut down (nothing is removed from the mediator: Credo does not).
// Prints one JSON line: counts and timings. Run it with `scripts/credo-stack.sh phones`.
// Settings (environment): MEDIATOR_INVITATION_URL, PHONES (4), MESSAGES (3), THINK_MS (500),
//   PICKUP  Implicit | PickUpV2 | PickUpV2LiveMode (Implicit), POLL_MS (5000, Credo's default),
//   PEER_NUMALGO (1: did:peer:1, Credo's default; 2 or 4), CREDO_LOG_LEVEL (warn).
import {
  Agent, ConnectionsModule, MediationRecipientModule, MediatorPickupStrategy,
  HttpOutboundTransport, WsOutboundTransport, ConsoleLogger, LogLevel, KeyDerivationMethod, utils,
} from '@credo-ts/core'
import { agentDependencies } from '@credo-ts/node'
import { AskarModule } from '@credo-ts/askar'
import { ariesAskar } from '@hyperledger/aries-askar-nodejs'
import { Store } from '@hyperledger/aries-askar-shared'

const env = (name, fallback) => process.env[name] ?? fallback
const invitation = env('MEDIATOR_INVITATION_URL')
if (!invitation) {
  console.error('phones: MEDIATOR_INVITATION_URL is not set')
  process.exit(2)
}
const phones = Number(env('PHONES', '4'))
const messages = Number(env('MESSAGES', '3'))
const thinkMs = Number(env('THINK_MS', '500'))
const spawnPerSec = Number(env('SPAWN_PER_SEC', '0'))
const pickup = env('PICKUP', 'Implicit')
if (!(pickup in MediatorPickupStrategy)) {
  console.error(`phones: PICKUP=${pickup} is no Credo pickup strategy`)
  process.exit(2)
}
if (phones < 2 || phones % 2) {
  console.error(`phones: PHONES=${phones} must be even and at least 2`)
  process.exit(2)
}
const logger = new ConsoleLogger(LogLevel[env('CREDO_LOG_LEVEL', 'warn')])
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const within = (ms, what, promise) =>
  Promise.race([promise, sleep(ms).then(() => { throw new Error(`${what}: not within ${ms} ms`) })])

// A wallet as a phone has one, but with a raw key: Credo's default argon2 derivation costs the
// phone ~450 ms and the mediator nothing.
async function phone(i) {
  const started = performance.now()
  const agent = new Agent({
    config: {
      label: `credo-phone-${i}`,
      walletConfig: {
        id: `phone-${i}-${utils.uuid()}`,
        key: Store.generateRawKey(),
        keyDerivationMethod: KeyDerivationMethod.Raw,
        storage: { type: 'sqlite', config: { inMemory: true } },
      },
      logger,
    },
    dependencies: agentDependencies,
    modules: {
      askar: new AskarModule({ ariesAskar }),
      connections: new ConnectionsModule({
        autoAcceptConnections: true,
        peerNumAlgoForDidExchangeRequests: Number(env('PEER_NUMALGO', '1')),
      }),
      mediationRecipient: new MediationRecipientModule({
        mediatorInvitationUrl: invitation,
        mediatorPickupStrategy: MediatorPickupStrategy[pickup],
        mediatorPollingInterval: Number(env('POLL_MS', '5000')),
      }),
    },
  })
  agent.registerOutboundTransport(new WsOutboundTransport())
  agent.registerOutboundTransport(new HttpOutboundTransport())
  await agent.wallet.initialize(agent.config.walletConfig)
  const walletReady = performance.now()
  // connects, requests mediation, awaits the grant, starts pickup
  await within(60000, `phone ${i} onboarding`, agent.initialize())
  const mediator = await agent.mediationRecipient.findDefaultMediator()
  if (mediator?.state !== 'granted') throw new Error(`phone ${i}: mediation ${mediator?.state}`)
  return { agent, i, onboardingMs: performance.now() - walletReady, walletMs: walletReady - started }
}

// Connects phone a (inviter) and b through the mediator; each keeps the other's connection id.
async function pair(a, b) {
  const oob = await a.agent.oob.createInvitation()
  const { connectionRecord } = await b.agent.oob.receiveInvitation(oob.outOfBandInvitation)
  b.peer = (await b.agent.connections.returnWhenIsConnected(connectionRecord.id, { timeoutMs: 30000 })).id
  const inviters = await within(30000, 'the inviter\'s connection record', (async () => {
    for (;;) {
      const found = await a.agent.connections.findAllByOutOfBandId(oob.id)
      if (found.length) return found
      await sleep(20)
    }
  })())
  a.peer = (await a.agent.connections.returnWhenIsConnected(inviters[0].id, { timeoutMs: 30000 })).id
}

// Every basic message a phone receives resolves the wait registered for its content.
function listen(p, waits) {
  p.agent.events.on('BasicMessageStateChanged', (e) => {
    const { basicMessageRecord, message } = e.payload
    if (basicMessageRecord.role !== 'receiver') return
    const w = waits.get(message.content)
    if (w) w.resolve(performance.now())
    else p.duplicates = (p.duplicates ?? 0) + 1
    waits.delete(message.content)
  })
}

async function talk(from, waits, delivery, lost) {
  for (let k = 0; k < messages; k++) {
    const content = utils.uuid()
    let resolve
    const arrived = new Promise((r) => { resolve = r })
    waits.set(content, { resolve })
    const sent = performance.now()
    await from.agent.basicMessages.sendMessage(from.peer, content)
    try {
      delivery.push((await within(10000, 'delivery', arrived)) - sent)
    } catch {
      lost.push(content)
    }
    await sleep(thinkMs)
  }
}

const summary = { phones, pickup, granted: 0, paired: 0, sent: 0, delivered: 0, lost: 0 }
// A rejection inside Credo's own background work (a timed-out pickup, a closed socket) ends the
// run with its summary and the reason, instead of a crash without either.
process.on('unhandledRejection', (e) => {
  console.error(`phones: ${e?.message ?? e}`)
  console.log(JSON.stringify({ ...summary, error: `unhandled: ${e?.message ?? e}` }))
  process.exit(1)
})
const all = []
try {
  const t0 = Date.now() / 1000
  if (spawnPerSec > 0) {
    // one every 1/SPAWN_PER_SEC seconds, as a load shape's spawn rate starts users
    all.push(...(await Promise.all(Array.from({ length: phones }, (_, k) =>
      sleep((k * 1000) / spawnPerSec).then(() => phone(k))))))
  } else {
    all.push(await phone(0))
    all.push(...(await Promise.all(Array.from({ length: phones - 1 }, (_, k) => phone(k + 1)))))
  }
  summary.granted = all.length
  summary.onboarded_at = [t0, Date.now() / 1000]
  const t1 = Date.now() / 1000
  for (let k = 0; k < phones; k += 2) await pair(all[k], all[k + 1])
  summary.paired = phones
  summary.paired_at = [t1, Date.now() / 1000]
  const waits = new Map()
  all.forEach((p) => listen(p, waits))
  const delivery = []
  const lost = []
  const t2 = Date.now() / 1000
  await Promise.all(all.map((p) => talk(p, waits, delivery, lost)))
  summary.messaged_at = [t2, Date.now() / 1000]
  summary.sent = phones * messages
  summary.delivered = delivery.length
  summary.lost = lost.length
  summary.duplicates = all.reduce((n, p) => n + (p.duplicates ?? 0), 0)
  const sorted = delivery.sort((a, b) => a - b)
  summary.delivery_p50_ms = Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)
  summary.onboarding_p50_ms = Math.round(all.map((p) => p.onboardingMs).sort((a, b) => a - b)[Math.floor(phones / 2)])
  await sleep(500) // acknowledgements in flight land before the wallets close
  for (const p of all) await p.agent.shutdown()
  console.log(JSON.stringify(summary))
  process.exit(0)
} catch (e) {
  console.error(`phones: ${e.message}`)
  console.log(JSON.stringify({ ...summary, error: e.message }))
  process.exit(1)
}
