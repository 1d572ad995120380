import CaptureFiles
import Foundation
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

/// A real TCP connection between two network namespaces carries an SMC-R CLC handshake;
/// dump records are written to a tap standing in for the SMC dump device; tcpdump captures
/// the NIC (Ethernet) and `-i any` (Linux cooked). smcpair must decode what tcpdump wrote,
/// and agree with tshark on the CLC messages.
@Suite(.serialized) struct RealCaptures {
  static let serverScript = """
    import socket, sys
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[1], 17000)); srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    accept = bytes.fromhex(open(sys.argv[2]).read().strip())
    def read_clc():
        head = b""
        while len(head) < 8: head += conn.recv(8 - len(head))
        length = int.from_bytes(head[5:7], "big")
        body = head
        while len(body) < length: body += conn.recv(length - len(body))
        return body
    read_clc()
    conn.sendall(accept)
    read_clc()
    while conn.recv(65536): pass
    conn.close()
    """

  static let clientScript = """
    import socket, sys, fcntl, struct, os, time
    server, proposal_hex, confirm_hex, records_file = sys.argv[1:5]
    s = socket.socket()
    s.bind(("0.0.0.0", 41000))
    s.connect((server, 17000))
    s.sendall(bytes.fromhex(proposal_hex))
    head = s.recv(8)
    rest = int.from_bytes(head[5:7], "big") - len(head)
    while rest > 0:
        rest -= len(s.recv(rest))
    s.sendall(bytes.fromhex(confirm_hex))
    # Dump records: written to the tap that stands in for smc-dummy0001.
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, 0x400454ca, struct.pack("16sH", b"smc-dummy0001", 0x0002 | 0x1000))
    for line in open(records_file):
        os.write(tap, bytes.fromhex(line.strip()))
        time.sleep(0.002)
    time.sleep(0.1)
    s.close()
    """

  @Test func tcpdumpCapturesDecodeAndAgreeWithTshark() throws {
    let tcpdump = try Tools.require("tcpdump")
    let tshark = try Tools.require("tshark")
    _ = try Tools.require("python3")
    let dir = try TemporaryDirectory("smcpair-netns")
    let lab = try NamespacePair(tag: "dec")
    try lab.addTap("smc-dummy0001", in: lab.client)

    // The conversation's bytes, with the real addresses and ports.
    var spec = ConversationSpec(
      scenario: .smcR(version: 1), client: Endpoint(IPAddress(lab.clientAddress)!, 41000),
      server: Endpoint(IPAddress(lab.serverAddress)!, 17000))
    spec.messages = 5
    var clc: [[UInt8]] = []
    var records: [String] = []
    ConversationSynthesizer(spec: spec, side: .client).generate { frame in
      let decoded = frame.bytes.withUnsafeBytes { FrameDecoder.decode($0, linkType: .ethernet) }
      if frame.interface == 0, decoded.payload.count > 0 { clc.append(Array(decoded.payload)) }
      if frame.interface == 1 { records.append(frame.bytes.map { String(format: "%02x", $0) }.joined()) }
    }
    #expect(clc.count == 3)
    #expect(records.count == 15)
    let hex = { (b: [UInt8]) in b.map { String(format: "%02x", $0) }.joined() }
    try hex(clc[1]).write(toFile: dir.file("accept.hex"), atomically: true, encoding: .utf8)
    try records.joined(separator: "\n").write(
      toFile: dir.file("records.hex"), atomically: true, encoding: .utf8)
    try Self.serverScript.write(toFile: dir.file("server.py"), atomically: true, encoding: .utf8)
    try Self.clientScript.write(toFile: dir.file("client.py"), atomically: true, encoding: .utf8)

    let server = try lab.start(
      lab.server, ["python3", dir.file("server.py"), lab.serverAddress, dir.file("accept.hex")],
      stdout: dir.file("server.out"), stderr: dir.file("server.err"))
    try lab.waitFor("ready", in: dir.file("server.out"))
    let captureNIC = try lab.start(
      lab.client, [tcpdump, "-i", "eth0", "--immediate-mode", "-U", "-n", "-w", dir.file("eth0.pcap")],
      stdout: dir.file("t1.out"), stderr: dir.file("t1.err"))
    let captureAny = try lab.start(
      lab.client, [tcpdump, "-i", "any", "--immediate-mode", "-U", "-n", "-w", dir.file("any.pcap")],
      stdout: dir.file("t2.out"), stderr: dir.file("t2.err"))
    let captureTap = try lab.start(
      lab.client,
      [tcpdump, "-i", "smc-dummy0001", "--immediate-mode", "-U", "-n", "-w", dir.file("dump.pcap")],
      stdout: dir.file("t3.out"), stderr: dir.file("t3.err"))
    for name in ["t1.err", "t2.err", "t3.err"] { try lab.waitFor("listening on", in: dir.file(name)) }
    try lab.exec(
      lab.client,
      [
        "python3", dir.file("client.py"), lab.serverAddress, hex(clc[0]), hex(clc[2]),
        dir.file("records.hex"),
      ])
    #expect(server.wait(seconds: 20) == 0, "python server did not finish")
    waitUntilFilesStopGrowing(["eth0.pcap", "any.pcap", "dump.pcap"].map { dir.file($0) })
    for capture in [captureNIC, captureAny, captureTap] { capture.stop() }

    let smcpair = try Tools.product("smcpair")
    // Link types as tcpdump wrote them.
    #expect(try CaptureFileReader(path: dir.file("eth0.pcap")).interfaces[0].linkType == .ethernet)
    let anyLink = try CaptureFileReader(path: dir.file("any.pcap")).interfaces[0].linkType
    #expect(anyLink == .linuxSLL2 || anyLink == .linuxSLL)

    // NIC capture: the real kernel TCP connection with our CLC payload.
    let nic = try Tools.run([smcpair, "decode", "--json", dir.file("eth0.pcap")])
    #expect(nic.status == 0, "\(nic.stderr)")
    let nicEvents = nic.stdout.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    let clcTypes = nicEvents.filter { $0["kind"] as? String == "clc" }.compactMap {
      $0["clc_type"] as? String
    }
    #expect(clcTypes == ["proposal", "accept", "confirm"])
    #expect(nicEvents.contains { $0["kind"] as? String == "tcp" && ($0["flags"] as? String) == "S" })

    // -i any: NIC and stand-in dump device in one cooked capture, joined by 4-tuple.
    let both = try Tools.run([smcpair, "decode", dir.file("any.pcap")])
    #expect(both.status == 0, "\(both.stderr)")
    #expect(
      both.stdout.contains(
        "10.213.0.1:41000 -> 10.213.0.2:17000  SMC-R v1  CDC 10, data 5 records / 5000 bytes"))
    #expect(both.stdout.contains("header length 16 bytes (calibrated from 10 CDC records)"))

    // Dump device alone (Ethernet frames from the tap), as smcdump-ex -m smc would capture.
    let dump = try Tools.run([smcpair, "decode", "--json", dir.file("dump.pcap")])
    #expect(dump.status == 0)
    let dumpKinds = dump.stdout.split(separator: "\n").compactMap {
      (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["kind"] as? String
    }
    #expect(dumpKinds.filter { $0 == "cdc" }.count == 10)
    #expect(dumpKinds.filter { $0 == "data" }.count == 5)

    // tshark agrees on the CLC messages tcpdump recorded.
    let oracle = try Tools.run([
      // Heuristics first: a port-registered dissector must not claim the CLC bytes.
      tshark, "-o", "tcp.try_heuristic_first:TRUE", "-r", dir.file("any.pcap"), "-Y", "smc", "-T", "fields",
      "-e", "frame.number", "-e", "smc.clc_msg",
      "-e", "smc.length",
    ])
    let theirs = oracle.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
    let ours = try Tools.run([smcpair, "decode", "--json", dir.file("any.pcap")]).stdout.split(
      separator: "\n"
    )
    .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    .filter { $0["kind"] as? String == "clc" }
    .map {
      [
        "\($0["frame"]!)",
        "\(["proposal": 1, "accept": 2, "confirm": 3, "decline": 4][$0["clc_type"] as! String]!)",
        "\($0["length"]!)",
      ]
    }
    #expect(theirs.count == 3)
    #expect(ours == theirs)
  }
}
