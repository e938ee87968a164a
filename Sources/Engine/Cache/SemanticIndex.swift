import CVectorMath
/// Turns texts into unit vectors whose dot product is their similarity.
public protocol Embedder: Sendable {
    func embed(_ texts: [String]) async throws -> [[Float]]
}

/// The built-in embedder that needs no model: hashed character trigrams of the lowercased text,
/// L2-normalized. It knows no synonyms, but it recognises the same question reworded a little
/// (punctuation, word order, a word changed), which is what a cache of repeated questions sees most.
public struct NGramEmbedder: Embedder {
    public let dimensions: Int

    public init(dimensions: Int = 384) {
        self.dimensions = max(8, dimensions)
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        texts.map(self.vector)
    }

    public func vector(_ text: String) -> [Float] {
        var vector = [Float](repeating: 0, count: self.dimensions)
        let scalars = Array(("  " + text.lowercased().filter { !$0.isPunctuation } + "  ").unicodeScalars)
        guard scalars.count >= 3 else { return vector }
        for index in 0...(scalars.count - 3) {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for scalar in scalars[index..<index + 3] {
                hash = (hash ^ UInt64(scalar.value)) &* 0x100_0000_01b3
            }
            vector[Int(hash % UInt64(self.dimensions))] += (hash >> 63) == 0 ? 1 : -1
        }
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? vector.map { $0 / norm } : vector
    }
}

/// Vectors of last user turns, partitioned by everything else of the request (route, scope,
/// parameters, the conversation before the last turn): a match can only come from a request that is
/// the same but for the wording of its last question. Small partitions are scanned whole (SIMD dot
/// products); past `approximateAbove` vectors a partition moves to an HNSW graph.
public struct SemanticIndex: Sendable {
    struct Item: Sendable {
        let vector: [Float]
        /// The exact-cache key of the answer.
        let key: String
    }

    struct Partition: Sendable {
        /// Keys oldest first, for eviction.
        var order: [String] = []
        var members: Set<String> = []
        /// The vectors while the partition is small.
        var flat: [Item] = []
        var graph: HNSW?
    }

    /// Vectors kept per partition; the oldest go first.
    public let partitionLimit: Int
    public let approximateAbove: Int
    private var partitions: [String: Partition] = [:]
    /// Which partition holds each key, so an entry leaving the exact cache can leave here too.
    private var homes: [String: String] = [:]

    public let searchWidth: Int
    /// Measured recall 1.0 with it on clustered vectors at 100,000 entries (`docs/performance.md`).
    public static let defaultSearchWidth = 64

    public init(partitionLimit: Int = 100_000, approximateAbove: Int = 2_000, searchWidth: Int = Self.defaultSearchWidth) {
        self.partitionLimit = max(1, partitionLimit)
        self.approximateAbove = max(1, approximateAbove)
        self.searchWidth = max(1, searchWidth)
    }

    public mutating func insert(_ vector: [Float], key: String, partition name: String) {
        if let home = self.homes[key], home != name { self.remove(key: key) }
        self.homes[key] = name
        // Taken out of the dictionary while it changes: a copy left behind would make every insert
        // copy the whole partition (its graph holds every vector).
        var partition = self.partitions.removeValue(forKey: name) ?? Partition()
        if !partition.members.insert(key).inserted {
            partition.order.removeAll { $0 == key }
            partition.flat.removeAll { $0.key == key }
            partition.graph?.remove(key: key)
        }
        partition.order.append(key)
        if partition.graph != nil {
            partition.graph?.insert(vector, key: key)
        } else {
            partition.flat.append(Item(vector: vector, key: key))
            if partition.flat.count > self.approximateAbove {
                var graph = HNSW(search: self.searchWidth)
                for item in partition.flat { graph.insert(item.vector, key: item.key) }
                partition.graph = graph
                partition.flat = []
            }
        }
        if partition.order.count > self.partitionLimit {
            let oldest = partition.order.removeFirst()
            partition.members.remove(oldest)
            partition.flat.removeAll { $0.key == oldest }
            partition.graph?.remove(key: oldest)
            self.homes[oldest] = nil
        }
        self.partitions[name] = partition
    }

    /// Forgets `key` (its answer left the cache); an emptied partition goes entirely, so the index
    /// holds no more than the cache does.
    public mutating func remove(key: String) {
        guard let name = self.homes.removeValue(forKey: key), var partition = self.partitions.removeValue(forKey: name) else { return }
        partition.members.remove(key)
        partition.order.removeAll { $0 == key }
        partition.flat.removeAll { $0.key == key }
        partition.graph?.remove(key: key)
        if !partition.order.isEmpty { self.partitions[name] = partition }
    }

    /// The closest stored turn at or above `threshold`, with its similarity.
    public func nearest(_ vector: [Float], partition name: String, threshold: Double) -> (key: String, similarity: Double)? {
        guard let partition = self.partitions[name] else { return nil }
        if let graph = partition.graph {
            guard let found = graph.nearest(vector), found.similarity >= threshold else { return nil }
            return found
        }
        var best: (key: String, similarity: Double)?
        for item in partition.flat where item.vector.count == vector.count {
            let similarity = Double(Self.dot(item.vector, vector))
            if similarity >= threshold && similarity > (best?.similarity ?? -2) { best = (item.key, similarity) }
        }
        return best
    }

    public mutating func removeAll() {
        self.partitions = [:]
        self.homes = [:]
    }

    public var partitionCount: Int { self.partitions.count }

    public var count: Int { self.partitions.values.reduce(0) { $0 + $1.order.count } }

    static func dot(_ a: [Float], _ b: [Float]) -> Float {
        a.withUnsafeBufferPointer { left in
            b.withUnsafeBufferPointer { right in
                Self.dot(left.baseAddress!, right.baseAddress!, count: min(left.count, right.count))
            }
        }
    }

    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        switchyard_dot(a, b, count)
    }
}
