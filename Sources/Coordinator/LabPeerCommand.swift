import ArgumentParser
import Lab
import SMCWire
import Support

struct LabPeer: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "peer",
    abstract:
      "Run an emulated SMC peer inside a lab host (real TCP, CLC handshake, kernel-style dump records).",
    discussion: """
      Run the server in one lab host and the client in another, e.g. with 'ip netns exec' or over ssh. \
      The SMC connection uses port P (CLC handshake); the emulated RDMA/ISM fabric uses port P+1. \
      Each side writes dump records on its host's stand-in dump device (smc-dummyXXXX).

      Scenarios: \(PeerScenario.allCases.map(\.rawValue).joined(separator: ", ")).

      Examples:
        ip netns exec smcpair-lab-h2 smcpair lab peer server --port 7000
        ip netns exec smcpair-lab-h1 smcpair lab peer client --connect 10.214.1.12:7000 --scenario bulk

      Connect to the server host's data address (data0; 'smcpair lab status' shows it).
      """,
    subcommands: [PeerServer.self, PeerClient.self]
  )
}

/// `ADDRESS:PORT`, as `--connect` and `--to` take it.
struct AddressAndPort {
  let address: String
  let port: UInt16

  /// Nil unless `text` is an address, one colon and a port number.
  init?(_ text: String) {
    let parts = text.split(separator: ":")
    guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
    address = String(parts[0])
    self.port = port
  }
}

struct PeerCommonOptions: ParsableArguments {
  @Option(help: "Stand-in dump device to write records on (default: this namespace's smc-dummy*).")
  var dumpDevice: String?

  @Flag(help: "Write no dump records.")
  var noDump = false

  @Option(help: "Dump header length to write (calibration tests; 16 is the likely real layout).")
  var dumpHeaderLen = 16

  @Option(help: "Seconds to wait for the peer at any step before giving up.")
  var timeout: Double = 30

  func validate() throws {
    guard (12...64).contains(dumpHeaderLen) else {
      throw ValidationError("--dump-header-len must be 12...64")
    }
    guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
  }

  func device() throws -> String? {
    if noDump { return nil }
    if let dumpDevice { return dumpDevice }
    guard let found = DumpDevice.discover() else {
      throw ValidationError(
        "no smc-dummy* device in this network namespace; run inside a lab host (ip netns exec smcpair-lab-h1 ...), pass --dump-device, or --no-dump"
      )
    }
    return found
  }
}

struct PeerServer: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "server", abstract: "Serve one emulated SMC connection (the scenario comes from the client)."
  )

  @Option(help: "Port of the SMC connection (the fabric uses port + 1).") var port: UInt16 = 7000
  @Option(help: "Address to listen on.") var listen = "0.0.0.0"
  @OptionGroup var common: PeerCommonOptions

  func run() throws {
    let device = try common.device()
    do {
      let report = try PeerEmulator.serve(
        listen: listen, port: port, dumpDevice: device, dumpHeaderLength: common.dumpHeaderLen,
        timeout: common.timeout)
      print(report)
    } catch {
      writeStandardError("smcpair lab peer server: \(error.description)\n")
      throw ExitCode(1)
    }
  }
}

struct PeerClient: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "client", abstract: "Open an emulated SMC connection to a peer server and run a scenario.")

  @Option(help: ArgumentHelp("Server address and port.", valueName: "addr:port")) var connect: String
  @Option(help: "Scenario: \(PeerScenario.allCases.map(\.rawValue).joined(separator: ", ")).")
  var scenario = PeerScenario.pingpong.rawValue
  @Option(help: "Messages to send (default 10; 70000 for wrap).") var messages: Int?
  @Option(help: "Bytes per message (default 1000; 64 for wrap).") var size: Int?
  @Option(help: "Seed for every random choice (identifiers, losses).") var seed: UInt64 = 1
  @Option(help: "Decline reason for the decline scenario (a kernel name such as NOSMCRDEV, or 0x03030002).")
  var reason = "NOSMCRDEV"
  @Option(help: "CLC version, 1 or 2.") var clcVersion: UInt8 = 1
  @Option(help: "Local port of the SMC connection (default: any).") var localPort: UInt16?
  @OptionGroup var common: PeerCommonOptions

  /// The scenario `--scenario` names.
  func chosenScenario() throws -> PeerScenario {
    guard let kind = PeerScenario(rawValue: scenario) else {
      throw ValidationError(
        "unknown scenario '\(scenario)'; one of \(PeerScenario.allCases.map(\.rawValue).joined(separator: ", "))"
      )
    }
    return kind
  }

  /// The server `--connect` names.
  func server() throws -> AddressAndPort {
    guard let server = AddressAndPort(connect) else {
      throw ValidationError("--connect takes ADDRESS:PORT, e.g. 10.213.1.12:7000")
    }
    return server
  }

  func validate() throws {
    _ = try chosenScenario()
    _ = try server()
    guard [1, 2].contains(clcVersion) else { throw ValidationError("--clc-version is 1 or 2") }
    if let messages, messages < 1 { throw ValidationError("--messages must be at least 1") }
    if let size, size < 1 || size > 1 << 20 { throw ValidationError("--size must be 1...1048576") }
    var options = PeerOptions()
    options.reason = reason
    if scenario == "decline" && options.declineCode == nil {
      throw ValidationError(
        "unknown --reason '\(reason)'; use a name like NOSMCRDEV or a code like 0x03030002")
    }
  }

  func run() throws {
    let kind = try chosenScenario()
    var options = PeerOptions()
    options.scenario = kind
    options.messages = messages ?? kind.defaultMessages
    options.size = size ?? kind.defaultSize
    options.seed = seed
    options.reason = reason
    options.clcVersion = clcVersion
    let peer = try server()
    let device = try common.device()
    do {
      let report = try PeerEmulator.connect(
        to: peer.address, port: peer.port, localPort: localPort, options: options,
        dumpDevice: device,
        dumpHeaderLength: common.dumpHeaderLen, timeout: common.timeout)
      print(report)
    } catch {
      writeStandardError("smcpair lab peer client: \(error.description)\n")
      throw ExitCode(1)
    }
  }
}

struct LabBlast: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blast",
    abstract: "Send UDP datagrams at a steady rate to another lab host (capture benchmarks).")

  @Option(help: ArgumentHelp("Destination address and port.", valueName: "addr:port")) var to: String
  @Option(help: "Datagrams per second (0: as fast as possible).") var rate = 50_000
  @Option(help: "Seconds to send.") var seconds: Double = 5
  @Option(help: "Payload bytes per datagram.") var size = 64

  /// The destination `--to` names.
  func destination() throws -> AddressAndPort {
    guard let destination = AddressAndPort(to) else { throw ValidationError("--to takes ADDRESS:PORT") }
    return destination
  }

  func validate() throws {
    _ = try destination()
    guard rate >= 0, seconds > 0, (1...65000).contains(size) else {
      throw ValidationError("--rate >= 0, --seconds > 0, --size 1...65000")
    }
  }

  func run() throws {
    let target = try destination()
    do {
      print(
        try TrafficBlaster.run(
          to: target.address, port: target.port, rate: rate, seconds: seconds, size: size))
    } catch {
      writeStandardError("smcpair lab blast: \(error.description)\n")
      throw ExitCode(1)
    }
  }
}
