// A C++ consumer that maps each received tensor with Eigen::Map, zero-copy: the
// queue's slot is lent in place (a loan), viewed as a row-major 2x3 matrix, and
// released after use. The queue is written by another process (the Rust peer's
// `queue-write`, in CI): float64 [2, 3] tensors whose every element is the index.
//
//   eigen_consumer NAME COUNT
#include <Eigen/Dense>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "tensorlane.hpp"

namespace tl = tensorlane;
using namespace std::chrono_literals;
using Matrix23 = Eigen::Matrix<double, 2, 3, Eigen::RowMajor>;

int main(int argc, char** argv) try {
    if (argc != 3) {
        std::fprintf(stderr, "usage: eigen_consumer NAME COUNT\n");
        return 2;
    }
    const std::string name = argv[1];
    const std::uint64_t count = std::strtoull(argv[2], nullptr, 10);
    const tl::Spec spec(tl::DType::F64, {2, 3});
    std::optional<tl::QueueConsumer> consumer;
    for (int tries = 0; !consumer; ++tries) {
        try {
            consumer = tl::QueueConsumer::open(name, spec);
        } catch (const tl::Error& e) {
            if (e.status() != TL_ERR_NOT_FOUND || tries == 1000) throw;
            std::this_thread::sleep_for(10ms);
        }
    }
    double total = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        auto loan = consumer->loan(10s);
        if (!loan) throw std::runtime_error("no item within 10 s");
        Eigen::Map<const Matrix23> m(loan->data<double>().data());
        const Matrix23 expected = Matrix23::Constant(static_cast<double>(i));
        if (loan->frame().seq != i + 1 || !m.isApprox(expected)) {
            throw std::runtime_error("item " + std::to_string(i) + " is not the expected matrix");
        }
        total += (m * m.transpose()).trace();  // Eigen works on the shared slot itself
        loan->release();
    }
    // sum over i of 6 i^2
    double expected_total = 0;
    for (std::uint64_t i = 0; i < count; ++i) expected_total += 6.0 * double(i) * double(i);
    if (total != expected_total) throw std::runtime_error("wrong total");
    std::printf("ok %llu (sum of traces %.0f)\n", static_cast<unsigned long long>(count), total);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "eigen_consumer: %s\n", e.what());
    return 1;
}
