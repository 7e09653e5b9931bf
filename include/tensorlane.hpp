// tensorlane for C++17: a header-only face over the C ABI of tensorlane.h.
//
// - Handles are RAII classes (move-only): StreamWriter, StreamReader, QueueProducer,
//   QueueConsumer, TopicPublisher, TopicSubscriber. Destroying one closes it.
// - Errors are exceptions: tensorlane::Error carries the tl_status and the message.
// - Waiting calls take a std::chrono duration (tensorlane::forever by default) and
//   return std::optional: empty when the time ran out (TL_ERR_TIMEOUT) or, with a
//   zero duration, when nothing was ready (TL_ERR_EMPTY / TL_ERR_FULL). Every other
//   failure throws.
// - Tensors are passed as contiguous ranges of elements (std::vector, std::array, a
//   C array, tensorlane::Span): their size in bytes must be the lane's tensor bytes
//   (TL_ERR_BUFFER_SIZE otherwise).
// - Options: create(..., CreateOptions) stores metadata and picks the clock, group
//   access, pre-faulting and memory locking; open(..., OpenOptions) and
//   take_over(..., OpenOptions) take an expected tensor, pre-faulting and locking.
//   Every handle reads its lane's metadata (metadata(), metadata(key)) and clock
//   (clock()).
// - Loans (QueueProducer::loan, QueueConsumer::loan) lend a queue slot in place; the
//   Loan object commits or releases explicitly, and gives the slot back (cancels) if
//   destroyed first (harmless after its handle was closed: handles are tokens, and
//   the cancel then finds it closed). Loans trust every process writing the lane
//   to follow the layout, as the C and Rust loans do. Lent bytes are aligned to 8
//   bytes.
//
// Link with -ltensorlane (pkg-config --libs tensorlane, or CMake's
// find_package(tensorlane) and the target tensorlane::tensorlane).

#ifndef TENSORLANE_HPP
#define TENSORLANE_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tensorlane.h"

namespace tensorlane {

/// A failed call: its status code and the library's message.
class Error : public std::runtime_error {
public:
    Error(tl_status status, const std::string& message)
        : std::runtime_error(std::string(tl_status_name(status)) + ": " + message),
          status_(status) {}

    /// The status code (TL_ERR_...).
    tl_status status() const noexcept { return status_; }

private:
    tl_status status_;
};

/// Waits without limit.
inline constexpr std::chrono::nanoseconds forever{-1};

/// Element types (the codes of tl_dtype).
enum class DType : std::uint32_t {
    Bool = TL_BOOL,
    U8 = TL_U8,
    U16 = TL_U16,
    U32 = TL_U32,
    U64 = TL_U64,
    I8 = TL_I8,
    I16 = TL_I16,
    I32 = TL_I32,
    I64 = TL_I64,
    F16 = TL_F16,
    BF16 = TL_BF16,
    F32 = TL_F32,
    F64 = TL_F64,
    Complex64 = TL_COMPLEX64,
    Complex128 = TL_COMPLEX128,
};

/// Metadata of one item received (seq, frame_id, timestamp_ns, missed).
using Frame = tl_frame;

namespace detail {

inline void check(tl_status status) {
    if (status != TL_OK) {
        throw Error(status, tl_last_error_message());
    }
}

/// Like check, but "nothing now" (timeout, empty, full) is false.
inline bool check_ready(tl_status status) {
    if (status == TL_ERR_TIMEOUT || status == TL_ERR_EMPTY || status == TL_ERR_FULL) {
        return false;
    }
    check(status);
    return true;
}

template <class Rep, class Period>
std::int64_t to_ns(std::chrono::duration<Rep, Period> timeout) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    return ns < 0 ? TL_FOREVER : static_cast<std::int64_t>(ns);
}

template <class C>
const void* bytes_of(const C& range) {
    return static_cast<const void*>(std::data(range));
}

template <class C>
void* bytes_of_mut(C& range) {
    return static_cast<void*>(std::data(range));
}

template <class C>
std::size_t size_of(const C& range) {
    return std::size(range) * sizeof(*std::data(range));
}

}  // namespace detail

/// A view of `size` elements at `data`: what a loan lends, and a way to pass a
/// plain pointer where a range is expected.
template <class T>
class Span {
public:
    Span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
    T* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    T* begin() const noexcept { return data_; }
    T* end() const noexcept { return data_ + size_; }
    T& operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    T* data_;
    std::size_t size_;
};

/// A tensor: element type and row-major shape.
struct Spec {
    DType dtype = DType::U8;
    std::vector<std::uint64_t> shape;

    Spec() = default;
    Spec(DType type, std::initializer_list<std::uint64_t> dims) : dtype(type), shape(dims) {}
    Spec(DType type, std::vector<std::uint64_t> dims) : dtype(type), shape(std::move(dims)) {}

    /// The C struct (throws TL_ERR_INVALID_ARGUMENT past TL_MAX_DIMS dimensions).
    tl_spec to_c() const {
        if (shape.size() > TL_MAX_DIMS) {
            throw Error(TL_ERR_INVALID_ARGUMENT, "more than TL_MAX_DIMS dimensions");
        }
        tl_spec spec{};
        spec.dtype = static_cast<std::uint32_t>(dtype);
        spec.ndim = static_cast<std::uint32_t>(shape.size());
        for (std::size_t i = 0; i < shape.size(); ++i) {
            spec.shape[i] = shape[i];
        }
        return spec;
    }

    /// From the C struct.
    static Spec from_c(const tl_spec& spec) {
        std::uint32_t n = spec.ndim < TL_MAX_DIMS ? spec.ndim : TL_MAX_DIMS;
        return Spec(static_cast<DType>(spec.dtype),
                    std::vector<std::uint64_t>(spec.shape, spec.shape + n));
    }

    /// Bytes of one tensor.
    std::size_t bytes() const {
        tl_spec spec = to_c();
        std::size_t n = 0;
        detail::check(tl_spec_byte_len(&spec, &n));
        return n;
    }

    /// Number of elements.
    std::uint64_t elements() const {
        std::uint64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }

    bool operator==(const Spec& other) const {
        return dtype == other.dtype && shape == other.shape;
    }
    bool operator!=(const Spec& other) const { return !(*this == other); }
};

/// How a subscriber joins a topic.
struct SubscribeOptions {
    tl_subscribe_options options{TL_LOSSLESS, 0, 0};

    /// Every item, holding the publisher back; starting `history` items back.
    static SubscribeOptions lossless(std::uint64_t history = 0) {
        return SubscribeOptions{{TL_LOSSLESS, 0, history}};
    }
    /// Never holds the publisher back; at most `max_lag` items behind.
    static SubscribeOptions lossy(std::uint64_t max_lag, std::uint64_t history = 0) {
        return SubscribeOptions{{TL_LOSSY, max_lag, history}};
    }
};

/// The clock that stamps a lane's frames (the codes of tl_clock).
enum class Clock : std::uint32_t {
    Monotonic = TL_CLOCK_MONOTONIC,
    Realtime = TL_CLOCK_REALTIME,
    None = TL_CLOCK_NONE,
};

/// A lane's metadata: key-value pairs in the order written.
using Metadata = std::vector<std::pair<std::string, std::string>>;

/// How a lane is created (tl_create_options): builder methods return *this.
/// Keys and values are passed as C strings, so each ends at its first NUL.
struct CreateOptions {
    Metadata metadata;
    Clock clock = Clock::Monotonic;
    bool group_access = false;
    bool prefault = false;
    bool lock_memory = false;

    /// Adds a metadata pair (keys non-empty and unique, at most 64 KiB in all).
    CreateOptions& with_metadata(std::string key, std::string value) {
        metadata.emplace_back(std::move(key), std::move(value));
        return *this;
    }
    CreateOptions& with_clock(Clock c) {
        clock = c;
        return *this;
    }
    /// Lets the lane's group open it (mode 0660): its members are as trusted as
    /// the owner.
    CreateOptions& with_group_access(bool on = true) {
        group_access = on;
        return *this;
    }
    CreateOptions& with_prefault(bool on = true) {
        prefault = on;
        return *this;
    }
    CreateOptions& with_lock_memory(bool on = true) {
        lock_memory = on;
        return *this;
    }
};

/// How a lane is opened or taken over (tl_open_options).
struct OpenOptions {
    std::optional<Spec> expect;
    bool prefault = false;
    bool lock_memory = false;

    /// The lane must carry `spec` (TL_ERR_WRONG_SPEC otherwise).
    OpenOptions& with_expect(Spec spec) {
        expect = std::move(spec);
        return *this;
    }
    OpenOptions& with_prefault(bool on = true) {
        prefault = on;
        return *this;
    }
    OpenOptions& with_lock_memory(bool on = true) {
        lock_memory = on;
        return *this;
    }
};

namespace detail {

/// The C struct of CreateOptions, with the entries it points to (not copyable:
/// `c` points into this object).
class CCreateOptions {
public:
    explicit CCreateOptions(const CreateOptions& options) {
        check(tl_create_options_init(&c));
        c.clock = static_cast<std::uint32_t>(options.clock);
        c.group_access = options.group_access ? 1 : 0;
        c.prefault = options.prefault ? 1 : 0;
        c.lock_memory = options.lock_memory ? 1 : 0;
        entries_.reserve(options.metadata.size());
        for (const auto& pair : options.metadata) {
            entries_.push_back(tl_metadata_entry{pair.first.c_str(), pair.second.c_str()});
        }
        c.metadata = entries_.empty() ? nullptr : entries_.data();
        c.metadata_len = entries_.size();
    }
    CCreateOptions(const CCreateOptions&) = delete;
    CCreateOptions& operator=(const CCreateOptions&) = delete;
    tl_create_options c{};

private:
    std::vector<tl_metadata_entry> entries_;
};

/// The C struct of OpenOptions, with the spec it points to (not copyable).
class COpenOptions {
public:
    explicit COpenOptions(const OpenOptions& options) {
        check(tl_open_options_init(&c));
        c.prefault = options.prefault ? 1 : 0;
        c.lock_memory = options.lock_memory ? 1 : 0;
        if (options.expect) {
            spec_ = options.expect->to_c();
            c.expect = &spec_;
        }
    }
    COpenOptions(const COpenOptions&) = delete;
    COpenOptions& operator=(const COpenOptions&) = delete;
    tl_open_options c{};

private:
    tl_spec spec_{};
};

/// A string copied out by `call(buf, buf_len, needed)`: sized by a first call
/// with an empty buffer. Empty if the first call says TL_ERR_NOT_FOUND.
template <class F>
std::optional<std::string> string_out(F call) {
    std::size_t needed = 0;
    tl_status status = call(nullptr, 0, &needed);
    if (status == TL_ERR_NOT_FOUND) return std::nullopt;
    if (status != TL_ERR_BUFFER_SIZE) check(status);
    std::string out(needed, '\0');
    check(call(out.data(), out.size(), &needed));
    out.resize(needed - 1);
    return out;
}

inline Metadata metadata_of(const void* lane) {
    std::size_t count = 0;
    check(tl_metadata_count(lane, &count));
    Metadata out;
    for (std::size_t i = 0; i < count; ++i) {
        auto key = string_out([&](char* buf, std::size_t len, std::size_t* needed) {
            return tl_metadata_key(lane, i, buf, len, needed);
        });
        if (!key) throw Error(TL_ERR_NOT_FOUND, "metadata pair vanished");
        auto value = string_out([&](char* buf, std::size_t len, std::size_t* needed) {
            return tl_metadata_get(lane, key->c_str(), buf, len, needed);
        });
        if (!value) throw Error(TL_ERR_NOT_FOUND, "metadata key " + *key + " vanished");
        out.emplace_back(std::move(*key), std::move(*value));
    }
    return out;
}

/// The reads every handle answers: its lane's metadata and clock.
template <class Derived>
class LaneInfo {
public:
    /// The lane's metadata pairs, in the order written (empty if none).
    Metadata metadata() const { return metadata_of(lane()); }
    /// The value of metadata `key`; empty if the lane has no such key.
    std::optional<std::string> metadata(const std::string& key) const {
        return string_out([&](char* buf, std::size_t len, std::size_t* needed) {
            return tl_metadata_get(lane(), key.c_str(), buf, len, needed);
        });
    }
    /// The clock that stamps the lane's frames (what Frame::timestamp_ns means).
    Clock clock() const {
        std::uint32_t code = 0;
        check(tl_lane_clock(lane(), &code));
        return static_cast<Clock>(code);
    }

private:
    const void* lane() const { return static_cast<const Derived*>(this)->get(); }
};

}  // namespace detail

/// Removes lane `name` from the machine (throws TL_ERR_NOT_FOUND if absent).
inline void unlink(const std::string& name) { detail::check(tl_unlink(name.c_str())); }

namespace detail {

template <class H, tl_status (*Close)(H*)>
struct Closer {
    void operator()(H* handle) const noexcept { Close(handle); }
};

template <class H, tl_status (*Close)(H*)>
using Owned = std::unique_ptr<H, Closer<H, Close>>;

}  // namespace detail

/// The writer of a stream (the latest value).
class StreamWriter : public detail::LaneInfo<StreamWriter> {
public:
    /// Creates stream `name` with `slots` slots (3 lets readers copy while it writes).
    static StreamWriter create(const std::string& name, const Spec& spec, std::size_t slots = 3) {
        tl_spec c = spec.to_c();
        tl_stream_writer* h = nullptr;
        detail::check(tl_stream_writer_create(name.c_str(), &c, slots, &h));
        return StreamWriter(h);
    }
    /// Creates stream `name` with options (metadata, clock, ...).
    static StreamWriter create(const std::string& name, const Spec& spec, std::size_t slots,
                               const CreateOptions& options) {
        tl_spec c = spec.to_c();
        detail::CCreateOptions o(options);
        tl_stream_writer* h = nullptr;
        detail::check(tl_stream_writer_create_with(name.c_str(), &c, slots, &o.c, &h));
        return StreamWriter(h);
    }
    /// Becomes the writer of `name`, whose writer is gone.
    static StreamWriter take_over(const std::string& name,
                                  const OpenOptions& options = OpenOptions()) {
        detail::COpenOptions o(options);
        tl_stream_writer* h = nullptr;
        detail::check(tl_stream_writer_take_over_with(name.c_str(), &o.c, &h));
        return StreamWriter(h);
    }
    /// Writes one tensor; returns its sequence number.
    template <class C>
    std::uint64_t write(const C& tensor) {
        std::uint64_t seq = 0;
        detail::check(tl_stream_writer_write(h_.get(), detail::bytes_of(tensor),
                                             detail::size_of(tensor), &seq));
        return seq;
    }
    Spec spec() const {
        tl_spec c{};
        detail::check(tl_stream_writer_spec(h_.get(), &c));
        return Spec::from_c(c);
    }
    tl_stream_writer* get() const noexcept { return h_.get(); }

private:
    explicit StreamWriter(tl_stream_writer* h) : h_(h) {}
    detail::Owned<tl_stream_writer, tl_stream_writer_close> h_;
};

/// A reader of a stream.
class StreamReader : public detail::LaneInfo<StreamReader> {
public:
    /// Opens stream `name`; with `expect`, it must carry that tensor.
    static StreamReader open(const std::string& name, const std::optional<Spec>& expect = {}) {
        tl_spec c{};
        if (expect) c = expect->to_c();
        tl_stream_reader* h = nullptr;
        detail::check(tl_stream_reader_open(name.c_str(), expect ? &c : nullptr, &h));
        return StreamReader(h);
    }
    /// Opens stream `name` with options (expected tensor, pre-faulting, locking).
    static StreamReader open(const std::string& name, const OpenOptions& options) {
        detail::COpenOptions o(options);
        tl_stream_reader* h = nullptr;
        detail::check(tl_stream_reader_open_with(name.c_str(), &o.c, &h));
        return StreamReader(h);
    }
    /// Copies the latest value; empty if nothing was written yet.
    template <class C>
    std::optional<Frame> read(C&& out) {
        Frame f{};
        if (!detail::check_ready(tl_stream_reader_read(h_.get(), detail::bytes_of_mut(out),
                                                       detail::size_of(out), &f))) {
            return std::nullopt;
        }
        return f;
    }
    /// Waits for a value newer than the last one returned; empty when time ran out.
    template <class C, class Rep = std::int64_t, class Period = std::nano>
    std::optional<Frame> read_new(C&& out,
                                  std::chrono::duration<Rep, Period> timeout = forever) {
        Frame f{};
        if (!detail::check_ready(tl_stream_reader_read_new(h_.get(), detail::bytes_of_mut(out),
                                                           detail::size_of(out),
                                                           detail::to_ns(timeout), &f))) {
            return std::nullopt;
        }
        return f;
    }
    bool writer_alive() const {
        bool alive = false;
        detail::check(tl_stream_reader_writer_alive(h_.get(), &alive));
        return alive;
    }
    Spec spec() const {
        tl_spec c{};
        detail::check(tl_stream_reader_spec(h_.get(), &c));
        return Spec::from_c(c);
    }
    tl_stream_reader* get() const noexcept { return h_.get(); }

private:
    explicit StreamReader(tl_stream_reader* h) : h_(h) {}
    detail::Owned<tl_stream_reader, tl_stream_reader_close> h_;
};

/// The producer of a queue (lossless).
class QueueProducer : public detail::LaneInfo<QueueProducer> {
public:
    /// A free slot lent in place: write the tensor through data<T>(), then commit().
    /// Destroyed uncommitted, it pushes nothing.
    class Loan {
    public:
        Loan(Loan&& other) noexcept
            : h_(std::exchange(other.h_, nullptr)), data_(other.data_), len_(other.len_) {}
        Loan& operator=(Loan&&) = delete;
        ~Loan() {
            if (h_) tl_queue_producer_cancel(h_);
        }
        /// The slot's tensor bytes as elements of T.
        template <class T>
        Span<T> data() const noexcept {
            return Span<T>(static_cast<T*>(data_), len_ / sizeof(T));
        }
        std::size_t size_bytes() const noexcept { return len_; }
        /// Pushes the slot; returns its sequence number.
        std::uint64_t commit() {
            if (!h_) throw Error(TL_ERR_LOAN_STATE, "the loan was committed already");
            std::uint64_t seq = 0;
            tl_queue_producer* h = std::exchange(h_, nullptr);
            detail::check(tl_queue_producer_commit(h, &seq));
            return seq;
        }

    private:
        friend class QueueProducer;
        Loan(tl_queue_producer* h, void* data, std::size_t len)
            : h_(h), data_(data), len_(len) {}
        tl_queue_producer* h_;
        void* data_;
        std::size_t len_;
    };

    /// Creates queue `name` of `capacity` tensors (a power of two).
    static QueueProducer create(const std::string& name, const Spec& spec,
                                std::size_t capacity) {
        tl_spec c = spec.to_c();
        tl_queue_producer* h = nullptr;
        detail::check(tl_queue_producer_create(name.c_str(), &c, capacity, &h));
        return QueueProducer(h);
    }
    /// Creates queue `name` with options (metadata, clock, ...).
    static QueueProducer create(const std::string& name, const Spec& spec, std::size_t capacity,
                                const CreateOptions& options) {
        tl_spec c = spec.to_c();
        detail::CCreateOptions o(options);
        tl_queue_producer* h = nullptr;
        detail::check(tl_queue_producer_create_with(name.c_str(), &c, capacity, &o.c, &h));
        return QueueProducer(h);
    }
    /// Becomes the producer of `name`, whose producer is gone.
    static QueueProducer take_over(const std::string& name,
                                   const OpenOptions& options = OpenOptions()) {
        detail::COpenOptions o(options);
        tl_queue_producer* h = nullptr;
        detail::check(tl_queue_producer_take_over_with(name.c_str(), &o.c, &h));
        return QueueProducer(h);
    }
    /// Pushes a copy; returns its sequence number, or empty when time ran out.
    template <class C, class Rep = std::int64_t, class Period = std::nano>
    std::optional<std::uint64_t> push(const C& tensor,
                                      std::chrono::duration<Rep, Period> timeout = forever) {
        std::uint64_t seq = 0;
        if (!detail::check_ready(tl_queue_producer_push(h_.get(), detail::bytes_of(tensor),
                                                        detail::size_of(tensor),
                                                        detail::to_ns(timeout), &seq))) {
            return std::nullopt;
        }
        return seq;
    }
    /// Lends the next free slot; empty when time ran out.
    template <class Rep = std::int64_t, class Period = std::nano>
    std::optional<Loan> loan(std::chrono::duration<Rep, Period> timeout = forever) {
        void* data = nullptr;
        std::size_t len = 0;
        if (!detail::check_ready(
                tl_queue_producer_loan(h_.get(), detail::to_ns(timeout), &data, &len))) {
            return std::nullopt;
        }
        return Loan(h_.get(), data, len);
    }
    Spec spec() const {
        tl_spec c{};
        detail::check(tl_queue_producer_spec(h_.get(), &c));
        return Spec::from_c(c);
    }
    tl_queue_producer* get() const noexcept { return h_.get(); }

private:
    explicit QueueProducer(tl_queue_producer* h) : h_(h) {}
    detail::Owned<tl_queue_producer, tl_queue_producer_close> h_;
};

/// The consumer of a queue.
class QueueConsumer : public detail::LaneInfo<QueueConsumer> {
public:
    /// The next item lent in place: read it through data<T>(), then release() to
    /// remove it. Destroyed unreleased, the item stays at the head.
    class Loan {
    public:
        Loan(Loan&& other) noexcept
            : h_(std::exchange(other.h_, nullptr)),
              data_(other.data_),
              len_(other.len_),
              frame_(other.frame_) {}
        Loan& operator=(Loan&&) = delete;
        ~Loan() {
            if (h_) tl_queue_consumer_cancel(h_);
        }
        template <class T>
        Span<const T> data() const noexcept {
            return Span<const T>(static_cast<const T*>(data_), len_ / sizeof(T));
        }
        std::size_t size_bytes() const noexcept { return len_; }
        const Frame& frame() const noexcept { return frame_; }
        /// Removes the item; its bytes may not be read afterwards.
        void release() {
            if (!h_) throw Error(TL_ERR_LOAN_STATE, "the loan was released already");
            detail::check(tl_queue_consumer_release(std::exchange(h_, nullptr)));
        }

    private:
        friend class QueueConsumer;
        Loan(tl_queue_consumer* h, const void* data, std::size_t len, Frame frame)
            : h_(h), data_(data), len_(len), frame_(frame) {}
        tl_queue_consumer* h_;
        const void* data_;
        std::size_t len_;
        Frame frame_;
    };

    /// Opens queue `name` as its consumer; with `expect`, it must carry that tensor.
    static QueueConsumer open(const std::string& name, const std::optional<Spec>& expect = {}) {
        tl_spec c{};
        if (expect) c = expect->to_c();
        tl_queue_consumer* h = nullptr;
        detail::check(tl_queue_consumer_open(name.c_str(), expect ? &c : nullptr, &h));
        return QueueConsumer(h);
    }
    /// Opens queue `name` with options (expected tensor, pre-faulting, locking).
    static QueueConsumer open(const std::string& name, const OpenOptions& options) {
        detail::COpenOptions o(options);
        tl_queue_consumer* h = nullptr;
        detail::check(tl_queue_consumer_open_with(name.c_str(), &o.c, &h));
        return QueueConsumer(h);
    }
    /// Pops the next item into `out`; empty when time ran out.
    template <class C, class Rep = std::int64_t, class Period = std::nano>
    std::optional<Frame> pop(C&& out, std::chrono::duration<Rep, Period> timeout = forever) {
        Frame f{};
        if (!detail::check_ready(tl_queue_consumer_pop(h_.get(), detail::bytes_of_mut(out),
                                                       detail::size_of(out),
                                                       detail::to_ns(timeout), &f))) {
            return std::nullopt;
        }
        return f;
    }
    /// Lends the next item in place; empty when time ran out.
    template <class Rep = std::int64_t, class Period = std::nano>
    std::optional<Loan> loan(std::chrono::duration<Rep, Period> timeout = forever) {
        const void* data = nullptr;
        std::size_t len = 0;
        Frame f{};
        if (!detail::check_ready(
                tl_queue_consumer_loan(h_.get(), detail::to_ns(timeout), &data, &len, &f))) {
            return std::nullopt;
        }
        return Loan(h_.get(), data, len, f);
    }
    Spec spec() const {
        tl_spec c{};
        detail::check(tl_queue_consumer_spec(h_.get(), &c));
        return Spec::from_c(c);
    }
    tl_queue_consumer* get() const noexcept { return h_.get(); }

private:
    explicit QueueConsumer(tl_queue_consumer* h) : h_(h) {}
    detail::Owned<tl_queue_consumer, tl_queue_consumer_close> h_;
};

/// The publisher of a topic (broadcast).
class TopicPublisher : public detail::LaneInfo<TopicPublisher> {
public:
    /// Creates topic `name` of `capacity` tensors (a power of two) and a table of
    /// `max_subscribers` entries.
    static TopicPublisher create(const std::string& name, const Spec& spec,
                                 std::size_t capacity, std::size_t max_subscribers) {
        tl_spec c = spec.to_c();
        tl_topic_publisher* h = nullptr;
        detail::check(tl_topic_publisher_create(name.c_str(), &c, capacity, max_subscribers, &h));
        return TopicPublisher(h);
    }
    /// Creates topic `name` with options (metadata, clock, ...).
    static TopicPublisher create(const std::string& name, const Spec& spec,
                                 std::size_t capacity, std::size_t max_subscribers,
                                 const CreateOptions& options) {
        tl_spec c = spec.to_c();
        detail::CCreateOptions o(options);
        tl_topic_publisher* h = nullptr;
        detail::check(tl_topic_publisher_create_with(name.c_str(), &c, capacity,
                                                     max_subscribers, &o.c, &h));
        return TopicPublisher(h);
    }
    /// Becomes the publisher of `name`, whose publisher is gone.
    static TopicPublisher take_over(const std::string& name,
                                    const OpenOptions& options = OpenOptions()) {
        detail::COpenOptions o(options);
        tl_topic_publisher* h = nullptr;
        detail::check(tl_topic_publisher_take_over_with(name.c_str(), &o.c, &h));
        return TopicPublisher(h);
    }
    /// Publishes a copy; returns its sequence number, or empty when time ran out.
    template <class C, class Rep = std::int64_t, class Period = std::nano>
    std::optional<std::uint64_t> publish(const C& tensor,
                                         std::chrono::duration<Rep, Period> timeout = forever) {
        std::uint64_t seq = 0;
        if (!detail::check_ready(tl_topic_publisher_publish(h_.get(), detail::bytes_of(tensor),
                                                            detail::size_of(tensor),
                                                            detail::to_ns(timeout), &seq))) {
            return std::nullopt;
        }
        return seq;
    }
    Spec spec() const {
        tl_spec c{};
        detail::check(tl_topic_publisher_spec(h_.get(), &c));
        return Spec::from_c(c);
    }
    tl_topic_publisher* get() const noexcept { return h_.get(); }

private:
    explicit TopicPublisher(tl_topic_publisher* h) : h_(h) {}
    detail::Owned<tl_topic_publisher, tl_topic_publisher_close> h_;
};

/// A subscriber of a topic.
class TopicSubscriber : public detail::LaneInfo<TopicSubscriber> {
public:
    /// Joins topic `name`; with `expect`, it must carry that tensor.
    static TopicSubscriber open(const std::string& name,
                                const SubscribeOptions& options = SubscribeOptions::lossless(),
                                const std::optional<Spec>& expect = {}) {
        tl_spec c{};
        if (expect) c = expect->to_c();
        tl_topic_subscriber* h = nullptr;
        detail::check(tl_topic_subscriber_open(name.c_str(), expect ? &c : nullptr,
                                               &options.options, &h));
        return TopicSubscriber(h);
    }
    /// Joins topic `name` with open options (expected tensor, pre-faulting, locking).
    static TopicSubscriber open(const std::string& name, const SubscribeOptions& options,
                                const OpenOptions& open) {
        detail::COpenOptions o(open);
        tl_topic_subscriber* h = nullptr;
        detail::check(tl_topic_subscriber_open_with(name.c_str(), &options.options, &o.c, &h));
        return TopicSubscriber(h);
    }
    /// Receives the next item into `out`; empty when time ran out.
    template <class C, class Rep = std::int64_t, class Period = std::nano>
    std::optional<Frame> recv(C&& out, std::chrono::duration<Rep, Period> timeout = forever) {
        Frame f{};
        if (!detail::check_ready(tl_topic_subscriber_recv(h_.get(), detail::bytes_of_mut(out),
                                                          detail::size_of(out),
                                                          detail::to_ns(timeout), &f))) {
            return std::nullopt;
        }
        return f;
    }
    Spec spec() const {
        tl_spec c{};
        detail::check(tl_topic_subscriber_spec(h_.get(), &c));
        return Spec::from_c(c);
    }
    tl_topic_subscriber* get() const noexcept { return h_.get(); }

private:
    explicit TopicSubscriber(tl_topic_subscriber* h) : h_(h) {}
    detail::Owned<tl_topic_subscriber, tl_topic_subscriber_close> h_;
};

}  // namespace tensorlane

#endif  // TENSORLANE_HPP
