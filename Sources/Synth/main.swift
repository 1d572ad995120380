// smcpair-synth: writes kernel-faithful synthetic SMC captures (one host's view) for
// fixtures and benchmarks. Not a user tool; see scripts/bench.
import Alignment
import ArgumentParser
import CaptureFiles
import SMCSynthesis
import SMCWire

struct Synth: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "smcpair-synth",
    abstract: "Write a synthetic SMC capture (NIC handshake + dump records) as one host sees it.",
    discussion: """
      Connections follow one another in time. Scenario 'mixed' cycles through SMC-R v1, SMC-R v2,
      SMC-D v1, SMC-D v2, a Decline (NOSMCRDEV) and a peer without SMC.

      Example: smcpair-synth --out big.pcapng --connections 2000 --messages 160
      """)

  @Option(help: "Output pcapng file.") var out: String
  @Option(help: "Whose view: client or server.") var side: String = "client"
  @Option(help: "Number of connections.") var connections: Int = 1
  @Option(help: "Messages per connection.") var messages: Int = 4
  @Option(help: "Bytes per message.") var size: Int = 1000
  @Option(help: "smc-r, smc-r-v2, smc-d, smc-d-v2, decline, peer-no-smc or mixed.") var scenario: String =
    "smc-r"
  @Option(help: "ethernet (NIC and dump device as two interfaces) or sll2 (one 'any' interface).")
  var link: String = "ethernet"
  @Option(help: "Dump header length to write (fields spread in declaration order).") var dumpHeaderLen: Int =
    16
  @Option(help: "Random seed.") var seed: UInt64 = 1
  @Flag(
    help:
      "Fill received SMC-D CDC records with garbage but for the cursors, as the kernel's dump does (default: the sent bytes)."
  )
  var receivedSmcdGarbage = false

  func validate() throws {
    guard ["client", "server"].contains(side) else { throw ValidationError("--side is client or server") }
    guard ["ethernet", "sll2"].contains(link) else { throw ValidationError("--link is ethernet or sll2") }
    guard dumpHeaderLen >= 12 && dumpHeaderLen <= 64 else {
      throw ValidationError(
        "--dump-header-len must be 12...64 (magic, 6 one-byte fields and a 16-bit length)")
    }
    guard connections > 0, messages >= 0, size > 0 else { throw ValidationError("counts must be positive") }
    _ = try scenarios()
  }

  func scenarios() throws -> [Scenario] {
    switch scenario {
    case "smc-r": return [.smcR(version: 1)]
    case "smc-r-v2": return [.smcR(version: 2)]
    case "smc-d": return [.smcD(version: 1)]
    case "smc-d-v2": return [.smcD(version: 2)]
    case "decline": return [.decline(code: 0x0303_0002, version: 1)]
    case "peer-no-smc": return [.peerNoSMC]
    case "mixed":
      return [
        .smcR(version: 1), .smcR(version: 2), .smcD(version: 1), .smcD(version: 2),
        .decline(code: 0x0303_0002, version: 1), .peerNoSMC,
      ]
    default: throw ValidationError("unknown --scenario '\(scenario)'")
    }
  }

  func run() throws {
    let writer = try PcapngWriter(path: out, application: "smcpair-synth", os: "Linux")
    let cooked = link == "sll2"
    if cooked {
      try writer.addInterface(InterfaceDescription(name: "any", linkType: .linuxSLL2))
    } else {
      try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
      try writer.addInterface(InterfaceDescription(name: "smc-dummy0001", linkType: .ethernet))
    }
    var format = DumpHeaderFormat.declarationOrder
    format.length = dumpHeaderLen
    if dumpHeaderLen < 16 {
      format = DumpHeaderFormat(
        length: dumpHeaderLen, versionOffset: 4, smcVersionOffset: 5, modeOffset: 6, typeOffset: 7,
        lengthOffset: 8, cdcType: 2, dataType: 1, headerVersion: 1)
    }
    let kinds = try scenarios()
    var start: Int64 = 1_764_000_000_000_000_000
    for index in 0..<connections {
      let client = Endpoint(IPAddress(ipv4: 0x0A00_0001), UInt16(32768 + index % 28000))
      let server = Endpoint(IPAddress(ipv4: 0x0A00_0002), 8000)
      var spec = ConversationSpec(scenario: kinds[index % kinds.count], client: client, server: server)
      spec.messages = messages
      spec.messageSize = size
      spec.startNanoseconds = start
      spec.dumpFormat = format
      spec.seed = seed &+ UInt64(index)
      spec.receivedSMCDGarbage = receivedSmcdGarbage
      var last = start
      try ConversationSynthesizer(spec: spec, side: Side(rawValue: side) ?? .client).generate { frame in
        last = max(last, frame.timeNanoseconds)
        if cooked {
          let bytes = FrameBuilder.sll2(
            fromEthernet: frame.bytes, interfaceIndex: frame.interface == 0 ? 2 : 3,
            packetType: frame.direction == .outbound ? 4 : 0)
          try writer.writePacket(
            interface: 0, timestampNanoseconds: frame.timeNanoseconds, bytes: bytes,
            direction: frame.direction)
        } else {
          try writer.writePacket(
            interface: frame.interface, timestampNanoseconds: frame.timeNanoseconds, bytes: frame.bytes,
            direction: frame.direction)
        }
      }
      // The next connection starts after this one ended on both hosts, so a client and a
      // server file written with the same options share one timeline.
      let otherSide = (Side(rawValue: side) ?? .client).other
      ConversationSynthesizer(spec: spec, side: otherSide).generate { frame in
        last = max(last, frame.timeNanoseconds)
      }
      start = last + 1_000_000
    }
    try writer.close()
    print("wrote \(writer.packetCount) packets to \(out)")
  }
}

Synth.main()
