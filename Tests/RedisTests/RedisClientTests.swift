import Foundation
import NIOCore
import NIOPosix
import RedisTestSupport
import Synchronization
import Testing
@testable import Redis

/// The client against a real redis-server on loopback: the handshake, pipelining, scripts, pub/sub,
/// and what happens when the server is slow, gone, back, or not Redis at all.
@Suite(.serialized)
struct RedisClientTests {
    private let group = MultiThreadedEventLoopGroup.singleton

    @Test func pipelinedRepliesComeBackInOrder() async throws {
        let server = try await RedisServerProcess()
        let client = RedisClient(server.configuration(), group: self.group)
        let commands = (0..<1_000).flatMap { index in
            [RedisCommand("SET", [RedisArgument("k\(index)"), RedisArgument(index)]), RedisCommand("INCR", [RedisArgument("k\(index)")])]
        }
        let replies = try await client.send(commands)
        #expect(replies.count == 2_000)
        #expect(replies.enumerated().allSatisfy { offset, reply in offset % 2 == 0 ? reply == .simpleString("OK") : reply == .integer(Int64(offset / 2 + 1)) })
        // Many callers at once share the connections, each getting its own replies.
        try await withThrowingTaskGroup(of: Bool.self) { tasks in
            for index in 0..<200 {
                tasks.addTask { try await client.send(RedisCommand("GET", [RedisArgument("k\(index)")])).int == Int64(index + 1) }
            }
            for try await matched in tasks { #expect(matched) }
        }
        // RESP3 after HELLO 3: a map is a map.
        let hello = try await client.send(RedisCommand("HELLO", ["3"]))
        guard case .map(let fields) = hello else {
            Issue.record("HELLO 3 answered \(hello)")
            return
        }
        #expect(fields.contains { $0.key.string == "proto" && $0.value == .integer(3) })
        await client.shutdown()
    }

    /// A connection sets only options any user may set: `SO_DEBUG` (what `.socketOption(.tcp_nodelay)`
    /// names, at the socket level) is refused to a non-root process, and every connection failed in
    /// the container, which runs as uid 10001. TCP_NODELAY is on (the bootstrap's own default).
    @Test func aConnectionSetsNoPrivilegedSocketOption() async throws {
        let server = try await RedisServerProcess()
        let connection = try await RedisConnection.connect(server.configuration(), on: self.group.next())
        let debug = try await connection.channel.getOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG))).get()
        let noDelay = try await connection.channel.getOption(.tcpOption(.tcp_nodelay)).get()
        #expect(debug == 0 && noDelay != 0)
        try? await connection.channel.close().get()
    }

    @Test func theHandshakeAuthenticatesAndSelectsTheDatabase() async throws {
        let server = try await RedisServerProcess(["--requirepass", "s3cret"])
        let refused = RedisClient(server.configuration(password: "wrong"), group: self.group)
        await #expect {
            _ = try await refused.send(RedisCommand("PING"))
        } throws: { error in
            (error as? RedisError)?.kind == .connect && "\(error)".contains("WRONGPASS")
        }
        let admin = RedisClient(server.configuration(password: "s3cret"), group: self.group)
        _ = try await admin.send(RedisCommand("ACL", ["SETUSER", "gateway", "on", ">pw", "~*", "&*", "+@all"]))
        let second = RedisClient(server.configuration(password: "pw", user: "gateway", database: 2), group: self.group)
        _ = try await second.send(RedisCommand("SET", ["where", "two"]))
        #expect(try await second.send(RedisCommand("GET", ["where"])).string == "two")
        #expect(try await admin.send(RedisCommand("GET", ["where"])) == .null)
        #expect(try await second.send(RedisCommand("CLIENT", ["GETNAME"])).string == "switchyard")
        await refused.shutdown()
        await admin.shutdown()
        await second.shutdown()
    }

    @Test func aScriptTheServerDoesNotKnowIsLoadedAndRun() async throws {
        let server = try await RedisServerProcess()
        let client = RedisClient(server.configuration(), group: self.group)
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await client.run(script, keys: ["{t}:n"], arguments: [5]) == .integer(5))
        #expect(try await client.send(RedisCommand("SCRIPT", ["EXISTS", RedisArgument(script.sha1)])) == .array([.integer(1)]))
        _ = try await client.send(RedisCommand("SCRIPT", ["FLUSH"]))
        #expect(try await client.run(script, keys: ["{t}:n"], arguments: [2]) == .integer(7))
        // A script's own error is the caller's, as it came.
        await #expect {
            _ = try await client.run(RedisScript("return redis.error_reply('LIMIT reached')"), keys: [], arguments: [])
        } throws: { error in
            (error as? RedisServerError)?.code == "LIMIT"
        }
        await client.shutdown()
    }

    @Test func aLateReplyFailsWithinTheCommandTimeoutAndTheClientGoesOn() async throws {
        let server = try await RedisServerProcess()
        var configuration = server.configuration()
        configuration.commandTimeout = .milliseconds(200)
        // One event loop: one connection, made before the pause.
        let client = RedisClient(configuration, group: self.group.next())
        let admin = RedisClient(server.configuration(), group: self.group)
        _ = try await client.send(RedisCommand("PING"))
        _ = try await admin.send(RedisCommand("CLIENT", ["PAUSE", "1500", "ALL"]))
        let started = ContinuousClock.now
        await #expect {
            _ = try await client.send(RedisCommand("GET", ["k"]))
        } throws: { error in
            (error as? RedisError)?.kind == .timeout
        }
        // Bounded by the timeout, not by the pause (a generous margin: this is not a timing test).
        #expect(ContinuousClock.now - started < .milliseconds(1_400))
        _ = try? await admin.send(RedisCommand("CLIENT", ["UNPAUSE"]))
        #expect(try await eventually { try await client.send(RedisCommand("PING")) == .simpleString("PONG") })
        await client.shutdown()
        await admin.shutdown()
    }

    @Test func aStoppedServerFailsCommandsAtOnceAndTheClientRecoversWhenItReturns() async throws {
        let server = try await RedisServerProcess()
        let client = RedisClient(server.configuration(), group: self.group)
        _ = try await client.send(RedisCommand("SET", ["k", "v"]))
        server.stop()
        for _ in 0..<20 {
            let started = ContinuousClock.now
            await #expect(throws: RedisError.self) { _ = try await client.send(RedisCommand("GET", ["k"])) }
            #expect(ContinuousClock.now - started < .seconds(2))
        }
        try await server.start()
        // Back by itself, once its backoff has passed (2 s at most).
        #expect(try await eventually { try await client.send(RedisCommand("PING")) == .simpleString("PONG") })
        await client.shutdown()
    }

    @Test func aServerThatNeverAnswersOrIsNotRedisIsCutOff() async throws {
        for behaviour in [FakeServer.Behaviour.silent, .garbage, .hugeBulk, .unaskedReply] {
            let fake = try await FakeServer(behaviour)
            var configuration = RedisConfiguration(host: "127.0.0.1", port: fake.port, connectTimeout: .milliseconds(300))
            configuration.decoder = RESPDecoder(limits: .init(maxBulkBytes: 1 << 20))
            let client = RedisClient(configuration, group: self.group)
            let started = ContinuousClock.now
            await #expect("\(behaviour)") {
                _ = try await client.send(RedisCommand("PING"))
            } throws: { error in
                // Refused in the handshake, or (a reply too many) as soon as it is seen.
                [.connect, .protocolViolation].contains((error as? RedisError)?.kind)
            }
            #expect(ContinuousClock.now - started < .seconds(2))
            await client.shutdown()
            await fake.stop()
        }
    }

    @Test func aSubscriberGetsMessagesAndSubscribesAgainAfterTheServerReturns() async throws {
        let server = try await RedisServerProcess()
        let client = RedisClient(server.configuration(), group: self.group)
        let subscriber = RedisSubscriber(server.configuration(), channels: ["fleet:a", "fleet:b"], eventLoop: self.group.next())
        let running = Task { await subscriber.run() }
        var events = subscriber.events.makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        _ = try await client.send(RedisCommand("PUBLISH", ["fleet:b", "drain p1"]))
        #expect(await events.next() == .message(channel: "fleet:b", payload: ByteBuffer(string: "drain p1")))

        server.stop()
        try await server.start()
        #expect(await events.next() == .subscribed)
        #expect(try await eventually { try await client.send(RedisCommand("PUBLISH", ["fleet:a", "after"])).int == 1 })
        #expect(await events.next() == .message(channel: "fleet:a", payload: ByteBuffer(string: "after")))
        running.cancel()
        await running.value
        #expect(await events.next() == nil)
        await client.shutdown()
    }

}

/// A TCP server on loopback that is not a well-behaved Redis.
final class FakeServer: Sendable {
    enum Behaviour: Sendable {
        /// Accepts, reads, never answers.
        case silent
        /// Answers bytes that are not RESP.
        case garbage
        /// Announces a bulk string past the client's limit.
        case hugeBulk
        /// Answers twice to one command.
        case unaskedReply
    }

    let port: Int
    private let channel: any Channel

    init(_ behaviour: Behaviour) async throws {
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Answerer(behaviour)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.port = self.channel.localAddress?.port ?? 0
    }

    func stop() async {
        try? await self.channel.close()
    }

    private final class Answerer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let behaviour: Behaviour

        init(_ behaviour: Behaviour) {
            self.behaviour = behaviour
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let answer: String? = switch self.behaviour {
            case .silent: nil
            case .garbage: "HTTP/1.1 400 Bad Request\r\n\r\n"
            case .hugeBulk: "$9999999999\r\n"
            case .unaskedReply: "%0\r\n+OK\r\n+OK\r\n"
            }
            if let answer { context.writeAndFlush(NIOAny(ByteBuffer(string: answer)), promise: nil) }
        }
    }
}
