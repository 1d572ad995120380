import TestSupport
import Testing

/// `lab peer client` and `lab blast` refuse malformed targets and scenarios before doing
/// anything (exit 64 with the message), and the parsed target is what they use.
@Suite struct LabCommandArguments {
  func smcpair(_ arguments: [String]) throws -> ProcessResult {
    try Tools.run([try Tools.product("smcpair")] + arguments)
  }

  @Test func peerClientNeedsAddressAndPort() throws {
    for connect in ["10.213.1.12", "10.213.1.12:port", "10.213.1.12:70000", "a:1:2", ":7000"] {
      let result = try smcpair(["lab", "peer", "client", "--connect", connect, "--no-dump"])
      #expect(result.status == 64, "\(connect): \(result.stderr)")
      #expect(result.stderr.contains("--connect takes ADDRESS:PORT"), "\(connect): \(result.stderr)")
    }
  }

  @Test func peerClientNamesTheScenarios() throws {
    let result = try smcpair([
      "lab", "peer", "client", "--connect", "10.213.1.12:7000", "--scenario", "nope", "--no-dump",
    ])
    #expect(result.status == 64, "\(result.stderr)")
    #expect(result.stderr.contains("unknown scenario 'nope'; one of pingpong"), "\(result.stderr)")
  }

  @Test func blastNeedsAddressAndPort() throws {
    let result = try smcpair(["lab", "blast", "--to", "10.213.1.12"])
    #expect(result.status == 64, "\(result.stderr)")
    #expect(result.stderr.contains("--to takes ADDRESS:PORT"), "\(result.stderr)")
  }

  @Test func peerClientUsesTheParsedTarget() throws {
    // Nothing listens on the loopback address's ports 1 and 2 (the fabric's): the client gets
    // to connecting with the parsed address and says where it tried.
    let result = try smcpair([
      "lab", "peer", "client", "--connect", "127.0.0.1:1", "--no-dump", "--timeout", "2",
    ])
    #expect(result.status == 1, "\(result.stderr)")
    #expect(result.stderr.contains("smcpair lab peer client: connect 127.0.0.1:"), "\(result.stderr)")
  }
}
