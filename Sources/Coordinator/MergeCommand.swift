import Alignment
import ArgumentParser
import CaptureFiles
import Foundation
import SMCWire
import SSHTransport
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

      With --formats pcapng alone, both captures are paired while they are read, keeping only \
      the packets still waiting for their copy (--pairing-window), so memory stays flat however \
      large the captures; if that cannot be trusted to find every pair (a clock step, a copy \
      later than the window), smcpair says why and pairs in memory. The other outputs show \
      every pair, so they are always made in memory.

      Which side sent each shared packet is decided from the captures, never from host names: \
      first the directions the capturing hosts recorded (smcpair-agent's pcapng flags, the \
      packet type of tcpdump -i any captures), then timing (only one way round are all \
      receives after their sends), then the handshake (SYN and CLC Proposal senders are the \
      client's). When nothing decides, the verdict is "cannot tell" and no bounds are given.

      Exit status: 0 merged and aligned; 1 a capture is missing or damaged; 3 merged but not \
      aligned (the captures share no packet, or no shared packet's direction can be told: \
      verdict "none" or "cannot-tell"); 64 usage; 65 inputs refused before merging (the same \
      capture twice, or client and server captures that look swapped).

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
  @Option(
    help: ArgumentHelp(
      "An address of the client host, overriding what the captures say (repeatable; an address in no shared packet is reported and not used).",
      valueName: "ip"))
  var clientAddress: [String] = []
  @Option(
    help: ArgumentHelp(
      "How long a packet waits for its copy from the other side (seconds) with --formats pcapng.",
      valueName: "seconds"))
  var pairingWindow = 2.0

  func validate() throws {
    let known = Set(["pcapng", "jsonl", "report", "html"])
    for format in formats.split(separator: ",") where !known.contains(String(format)) {
      throw ValidationError("unknown format '\(format)'; choose from pcapng, jsonl, html, report")
    }
    guard reference == "client" || reference == "server" else {
      throw ValidationError("--reference is client or server")
    }
    guard pairingWindow.isFinite, pairingWindow > 0, pairingWindow <= 3600 else {
      throw ValidationError("--pairing-window is a number of seconds above 0 and at most 3600")
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
        clientAddresses: addresses, window: Int64(pairingWindow * 1e9))
      print(result.report)
      if !result.aligned { throw ExitCode(3) }
    } catch let refusal as MergeRun.Refusal {
      writeStandardError("smcpair merge: \(refusal)\n")
      throw ExitCode(65)
    } catch let exit as ExitCode {
      throw exit
    } catch {
      writeStandardError("smcpair merge: \(error)\n")
      if let damaged = error as? CaptureFileError, damaged.code == .truncated {
        writeStandardError(Self.intactCopyHint(damaged))
      }
      throw ExitCode(1)
    }
  }

  /// For a capture cut off mid-block: how to merge the packets before the cut.
  static func intactCopyHint(_ error: CaptureFileError) -> String {
    let path = error.path
    let base =
      path.hasSuffix(".pcapng") || path.hasSuffix(".pcap") ? (path as NSString).deletingPathExtension : path
    let copy = base + "-intact.pcapng"
    return
      "  the \(error.salvagedPackets) packets before the cut are intact: copy them with editcap, which stops at the cut, and merge the copy:\n    editcap -F pcapng \(RemoteCommand.quote(path)) \(RemoteCommand.quote(copy))\n"
  }
}
