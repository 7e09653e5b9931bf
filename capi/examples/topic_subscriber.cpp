// A C++ subscriber of a topic published by another process (the Rust peer's
// `topic-write`, in CI): float64 [2, 3] tensors whose every element is the item's
// index. One lossless subscriber joins with enough history to get every item
// whatever the timing, a lossy one (lag 1, history 1) gets what is newest when it asks.
// First, the options: a stream NAME-stream created with metadata and the realtime
// clock, read back by a reader opened with OpenOptions, then removed.
//
//   topic_subscriber NAME COUNT
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tensorlane.hpp"

namespace tl = tensorlane;
using namespace std::chrono_literals;

template <class Open>
auto open_retrying(Open open) {
    for (int tries = 0;; ++tries) {
        try {
            return open();
        } catch (const tl::Error& e) {
            if (e.status() != TL_ERR_NOT_FOUND || tries == 1000) throw;
            std::this_thread::sleep_for(10ms);
        }
    }
}

static void check(const char* what, const std::vector<double>& tensor, const tl::Frame& frame) {
    for (double v : tensor) {
        if (v != static_cast<double>(frame.seq - 1)) {
            throw std::runtime_error(std::string(what) + ": seq " + std::to_string(frame.seq) +
                                     " holds " + std::to_string(v));
        }
    }
}

static void require(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

static void check_options(const std::string& name, const tl::Spec& spec) {
    auto writer = tl::StreamWriter::create(name, spec, 3,
                                           tl::CreateOptions()
                                               .with_metadata("units", "m/s")
                                               .with_metadata("frame", "base_link")
                                               .with_clock(tl::Clock::Realtime));
    auto reader = tl::StreamReader::open(name, tl::OpenOptions().with_expect(spec).with_prefault());
    const tl::Metadata want = {{"units", "m/s"}, {"frame", "base_link"}};
    require(writer.metadata() == want && reader.metadata() == want, "options: metadata lost");
    require(reader.metadata("frame") == std::optional<std::string>("base_link"),
            "options: metadata(\"frame\")");
    require(!reader.metadata("absent"), "options: a key that was never written");
    require(reader.clock() == tl::Clock::Realtime, "options: the clock is not realtime");
    std::vector<double> tensor(6, 0.0);
    writer.write(tensor);
    auto frame = reader.read(tensor);
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    require(frame && static_cast<std::int64_t>(frame->timestamp_ns) <= now &&
                now - static_cast<std::int64_t>(frame->timestamp_ns) < 60'000'000'000LL,
            "options: the frame is not stamped by the realtime clock");
    try {
        tl::StreamReader::open(name, tl::OpenOptions().with_expect(tl::Spec(tl::DType::F32, {6})));
        throw std::runtime_error("options: a reader expecting another tensor opened");
    } catch (const tl::Error& e) {
        if (e.status() != TL_ERR_WRONG_SPEC) throw;
    }
    tl::unlink(name);
}

int main(int argc, char** argv) try {
    if (argc != 3) {
        std::fprintf(stderr, "usage: topic_subscriber NAME COUNT\n");
        return 2;
    }
    const std::string name = argv[1];
    const std::uint64_t count = std::strtoull(argv[2], nullptr, 10);
    const tl::Spec spec(tl::DType::F64, {2, 3});
    check_options(name + "-stream", spec);
    auto lossless = open_retrying(
        [&] { return tl::TopicSubscriber::open(name, tl::SubscribeOptions::lossless(count), spec); });
    auto lossy = tl::TopicSubscriber::open(name, tl::SubscribeOptions::lossy(1, 1),
                                           tl::OpenOptions().with_expect(spec));
    if (lossless.spec() != spec) throw std::runtime_error("the topic's spec changed");
    // The Rust peer creates its topic with the defaults.
    require(lossy.metadata().empty() && lossy.clock() == tl::Clock::Monotonic,
            "the topic's metadata or clock are not the defaults");

    std::vector<double> tensor(6);
    for (std::uint64_t i = 0; i < count; ++i) {
        auto frame = lossless.recv(tensor, 10s);
        if (!frame) throw std::runtime_error("no item within 10 s");
        check("lossless", tensor, *frame);
        if (frame->seq != i + 1) throw std::runtime_error("lossless: out of order");
    }
    // The publisher is gone once it has published everything.
    try {
        lossless.recv(tensor, 10s);
        throw std::runtime_error("an item after the last one");
    } catch (const tl::Error& e) {
        if (e.status() != TL_ERR_WRITER_GONE) throw;
    }

    std::uint64_t received = 0, missed = 0, last = 0;
    for (;;) {
        try {
            auto frame = lossy.recv(tensor, 10s);
            if (!frame) throw std::runtime_error("lossy: nothing within 10 s");
            check("lossy", tensor, *frame);
            if (frame->seq <= last) throw std::runtime_error("lossy: out of order");
            last = frame->seq;
            ++received;
            missed += frame->missed;
        } catch (const tl::Error& e) {
            if (e.status() == TL_ERR_WRITER_GONE) break;
            throw;
        }
    }
    if (last != count) throw std::runtime_error("lossy: the newest item was not received");
    std::printf("ok %llu (lossy: %llu received, %llu skipped)\n",
                static_cast<unsigned long long>(count), static_cast<unsigned long long>(received),
                static_cast<unsigned long long>(missed));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "topic_subscriber: %s\n", e.what());
    return 1;
}
