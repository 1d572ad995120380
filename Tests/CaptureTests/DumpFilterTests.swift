import Orchestration
import Testing

@Suite struct DumpFilters {
  @Test func tcpReadsUDPAndByteFiltersCaptureEverything() {
    #expect(DumpFilter.derive("tcp port 443") == "udp port 443")
    #expect(
      DumpFilter.derive("host 10.0.0.2 and (tcp dst port 80 or tcp src port 80)")
        == "host 10.0.0.2 and (udp dst port 80 or udp src port 80)")
    // Only the word: hosts and names containing 'tcp' stay.
    #expect(DumpFilter.derive("host tcpserver and tcp port 1") == "host tcpserver and udp port 1")
    #expect(DumpFilter.derive("port 7000") == "port 7000")
    #expect(DumpFilter.derive("") == "")
    #expect(DumpFilter.derive("tcp[13] & 2 != 0") == "")
  }
}
