import TestSupport
import Testing

@Suite struct AgentVersion {
  @Test func versionNamesAgentProtocolAndBuild() throws {
    let result = try Tools.run([try Tools.product("smcpair-agent"), "--version"])
    #expect(result.status == 0)
    #expect(result.stdout.hasPrefix("smcpair-agent "))
    #expect(result.stdout.contains(" protocol 2 build "))
    #expect(result.stdout.contains("libpcap version 1."))
  }

  @Test func unknownArgumentIsAUsageError() throws {
    let result = try Tools.run([try Tools.product("smcpair-agent"), "--bogus"])
    #expect(result.status == 64)
    #expect(result.stderr.contains("unknown argument '--bogus'"))
  }
}
