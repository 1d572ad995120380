import Alignment
import ArgumentParser
import CaptureFiles
import Foundation
import SMCWire
import Timeline

struct MergeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract: "Align the clocks of a client and a server capture and merge them onto one time axis.",
    discussion: """
      Packets seen on both sides (TCP segments, CDC records, data records) bound the clock offset \
      from both directions; the offset and skew are chosen inside the feasible set, with bounds. \
      A clock step inside the captures splits the alignment into segments. See docs/alignment.md.

      Writes into --out: alignment.json (always), merged.pcapng (one interface per side and \
      interface, the same packet id on both copies of a paired packet, delays in comments), \
      timeline.jsonl (one paired message per line, then the findings), timeline.html (a ladder \
      diagram in one self-contained file), report.md.

      Example:
        smcpair merge client.pcapng server.pcapng --out merged/ --client-name h1 --server-name h2
      """)

  @Argument(help: "The client side's capture (pcap or pcapng).") var client: String
  @Argument(help: "The server side's capture.") var server: String
  @Option(help: "Output folder (created).") var out: String
  @Option(help: "Name of the client host in interface names.") var clientName = "client"
  @Option(help: "Name of the server host in interface names.") var serverName = "server"
  @Option(help: "Outputs: any of pcapng,jsonl,html,report (alignment.json is always written).")
  var formats = "pcapng,jsonl,html,report"
  @Option(help: "Clock the merged timeline uses: client or server.") var reference = "client"
  @Option(help: ArgumentHelp("Address of the client host (default: the SYN senders).", valueName: "ip"))
  var clientAddress: [String] = []

  func validate() throws {
    let known = Set(["pcapng", "jsonl", "report", "html"])
    for format in formats.split(separator: ",") where !known.contains(String(format)) {
      throw ValidationError("unknown format '\(format)'; choose from pcapng, jsonl, html, report")
    }
    guard reference == "client" || reference == "server" else {
      throw ValidationError("--reference is client or server")
    }
    for address in clientAddress where IPAddress(address) == nil {
      throw ValidationError("--client-address '\(address)' is not an IP address")
    }
  }

  func run() throws {
    let addresses = Set(clientAddress.compactMap(IPAddress.init))
    do {
      let result = try MergeRun.run(
        client: client, server: server, out: out, clientName: clientName, serverName: serverName,
        formats: Set(formats.split(separator: ",").map(String.init)),
        referenceIsServer: reference == "server",
        clientAddresses: addresses)
      print(result.report)
    } catch {
      writeStandardError("smcpair merge: \(error)\n")
      throw ExitCode(1)
    }
  }
}
