// A Credo-TS 0.5.19 mediator for acaload's tests and benchmarks (scripts/credo-stack.sh runs it).
// DIDComm v1 over HTTP and WebSocket inbound, mediation granted to anyone, connections accepted
// automatically. Settings from the environment:
//   CREDO_HOST (127.0.0.1)  CREDO_HTTP_PORT (3200)  CREDO_WS_PORT (3201)
//   CREDO_FORWARDING        DirectDelivery (Credo's default) | QueueOnly | QueueAndLiveModeDelivery
//   CREDO_WALLET_KEY        the wallet's key (never printed)
//   CREDO_STATE             a file to write {"invitation_url": ...} to once ready
//   CREDO_LOG_LEVEL         Credo's log level (warn)
//   CREDO_MESSAGE_LOG       a file to append every inbound message to, one JSON line each
//                           (time, @type, transport, socket): the fidelity test's view; unset = off
import { writeFileSync, renameSync, appendFileSync } from 'node:fs'
import { AsyncLocalStorage } from 'node:async_hooks'
import {
  Agent, ConnectionsModule, MediatorModule, HttpOutboundTransport, WsOutboundTransport,
  ConsoleLogger, LogLevel, MessageReceiver, Dispatcher,
} from '@credo-ts/core'
import { agentDependencies, HttpInboundTransport, WsInboundTransport } from '@credo-ts/node'
import { AskarModule } from '@credo-ts/askar'
import { ariesAskar } from '@hyperledger/aries-askar-nodejs'

const env = (name, fallback) => process.env[name] ?? fallback
const host = env('CREDO_HOST', '127.0.0.1')
const httpPort = Number(env('CREDO_HTTP_PORT', '3200'))
const wsPort = Number(env('CREDO_WS_PORT', '3201'))
const forwarding = env('CREDO_FORWARDING', 'DirectDelivery')
const strategies = ['DirectDelivery', 'QueueOnly', 'QueueAndLiveModeDelivery']
if (!strategies.includes(forwarding)) {
  console.error(`credo mediator: CREDO_FORWARDING=${forwarding} is none of ${strategies.join(', ')}`)
  process.exit(2)
}
const key = process.env.CREDO_WALLET_KEY
if (!key) {
  console.error('credo mediator: CREDO_WALLET_KEY is not set')
  process.exit(2)
}

const agent = new Agent({
  config: {
    label: 'credo-mediator',
    walletConfig: {
      id: 'credo-mediator',
      key,
      storage: { type: 'sqlite', config: { inMemory: true } },
    },
    endpoints: [`http://${host}:${httpPort}`, `ws://${host}:${wsPort}`],
    logger: new ConsoleLogger(LogLevel[env('CREDO_LOG_LEVEL', 'warn')]),
  },
  dependencies: agentDependencies,
  modules: {
    askar: new AskarModule({ ariesAskar }),
    connections: new ConnectionsModule({ autoAcceptConnections: true }),
    mediator: new MediatorModule({
      autoAcceptMediationRequests: true,
      messageForwardingStrategy: forwarding,
    }),
  },
})
agent.registerInboundTransport(new HttpInboundTransport({ port: httpPort }))
agent.registerInboundTransport(new WsInboundTransport({ port: wsPort }))
agent.registerOutboundTransport(new HttpOutboundTransport())
agent.registerOutboundTransport(new WsOutboundTransport())

await agent.initialize()
if (process.env.CREDO_MESSAGE_LOG) logInbound(process.env.CREDO_MESSAGE_LOG)
const oob = await agent.oob.createInvitation({ multiUseInvitation: true, label: 'credo-mediator' })
const url = oob.outOfBandInvitation.toUrl({ domain: `http://${host}:${httpPort}` })
const state = process.env.CREDO_STATE
if (state) {
  writeFileSync(`${state}.tmp`, JSON.stringify({ invitation_url: url, forwarding }) + '\n')
  renameSync(`${state}.tmp`, state)
}
console.log(`credo mediator ready: http://${host}:${httpPort} ws://${host}:${wsPort}, forwarding ${forwarding}`)

// Each inbound message as the dispatcher gets it (unpacked), with the transport session it came
// on: the receiver runs the dispatch inside the session's async context.
function logInbound(file) {
  const current = new AsyncLocalStorage()
  const receiver = agent.dependencyManager.resolve(MessageReceiver)
  const receive = receiver.receiveMessage.bind(receiver)
  receiver.receiveMessage = (message, options) => current.run(options?.session, () => receive(message, options))
  const dispatcher = agent.dependencyManager.resolve(Dispatcher)
  const dispatch = dispatcher.dispatch.bind(dispatcher)
  dispatcher.dispatch = (context) => {
    const session = current.getStore()
    const ws = session?.type === 'WebSocket'
    const line = {
      t: Date.now() / 1000,
      type: context.message.type,
      transport: ws ? 'ws' : 'http',
      socket: ws ? session.id : null,
      sender: context.senderKey?.publicKeyBase58 ?? null,
    }
    appendFileSync(file, JSON.stringify(line) + '\n')
    return dispatch(context)
  }
}

const stop = async () => {
  await agent.shutdown()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
