// gankit_sample: images of a gankit AOTInductor package (gankit export --format aoti), without Python.
//
//   gankit_sample PACKAGE.pt2 SEED START N OUT.npy [DIGIT]
//
// Writes samples START .. START+N-1 of SEED as a (N, C, H, W) uint8 .npy: z from gankit's C noise
// (gankit/_noise/native.c, linked in: the same bits as gankit.noise), labels for a class-conditional
// generator as gankit's balanced spec ((SEED + i) mod K for sample i) or DIGIT for every sample, and
// uint8 = round-half-even((x + 1) * 127.5) clipped to 0..255, as gankit.pixels.to_uint8.
// The build line is in docs/export-targets.md.
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

extern "C" int gankit_noise_fill(float *out, uint64_t seed, uint64_t start, uint64_t count, uint64_t latent,
                                 int threads);

namespace {

constexpr int64_t kBatch = 4096;

// The integers after "key": in a gankit_config JSON string (flat: numbers and lists of numbers).
std::vector<int64_t> config_ints(const std::string &json, const std::string &key) {
    std::vector<int64_t> values;
    size_t at = json.find("\"" + key + "\"");
    if (at == std::string::npos) return values;
    at = json.find(':', at) + 1;
    while (at < json.size() && (json[at] == ' ' || json[at] == '[')) at++;
    while (at < json.size()) {
        char *end = nullptr;
        values.push_back(std::strtoll(json.c_str() + at, &end, 10));
        at = end - json.c_str();
        while (at < json.size() && json[at] == ' ') at++;
        if (at >= json.size() || json[at] != ',') break;
        at++;
        while (at < json.size() && json[at] == ' ') at++;
        if (json[at] == '"') break;  // the next key: the value was a single number
    }
    return values;
}

void write_npy(const std::string &path, const std::vector<uint8_t> &data, const std::vector<int64_t> &shape) {
    std::string dims;
    for (int64_t d : shape) dims += std::to_string(d) + ", ";
    std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (" + dims + "), }";
    header.resize(((10 + header.size() + 1 + 63) / 64) * 64 - 10 - 1, ' ');
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    uint16_t length = static_cast<uint16_t>(header.size());
    out.write(reinterpret_cast<const char *>(&length), 2);  // little-endian on x86
    out << header;
    out.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        std::cerr << "usage: gankit_sample PACKAGE.pt2 SEED START N OUT.npy [DIGIT]\n";
        return 2;
    }
    try {
        const uint64_t seed = std::stoull(argv[2]), start = std::stoull(argv[3]);
        const int64_t count = std::stoll(argv[4]);
        torch::inductor::AOTIModelPackageLoader loader(argv[1]);
        auto metadata = loader.get_metadata();
        if (!metadata.count("gankit_config")) throw std::runtime_error("not a gankit package (no gankit_config)");
        const std::string config = metadata["gankit_config"];
        const int64_t latent = config_ints(config, "latent_dim").at(0);
        const std::vector<int64_t> image = config_ints(config, "image_shape");
        const std::vector<int64_t> classes_list = config_ints(config, "num_classes");
        const int64_t classes = classes_list.empty() ? 0 : classes_list[0];
        const int64_t digit = argc == 7 ? std::stoll(argv[6]) : -1;
        if (digit >= 0 && (classes == 0 || digit >= classes)) throw std::runtime_error("DIGIT is out of range");
        const at::Device device(metadata.count("gankit_device") ? metadata["gankit_device"] : "cpu");
        const int64_t pixels = image.at(0) * image.at(1) * image.at(2);

        std::vector<uint8_t> out(static_cast<size_t>(count * pixels));
        std::vector<float> z(static_cast<size_t>(kBatch * latent));
        for (int64_t first = 0; first < count; first += kBatch) {
            const int64_t n = std::min(kBatch, count - first);
            if (gankit_noise_fill(z.data(), seed, start + first, n, latent, 1) != 0) throw std::runtime_error("noise");
            std::vector<at::Tensor> inputs{at::from_blob(z.data(), {n, latent}, at::kFloat).to(device)};
            if (classes) {
                at::Tensor labels = at::empty({n}, at::kLong);
                auto *label = labels.data_ptr<int64_t>();
                const uint64_t k = static_cast<uint64_t>(classes);
                const uint64_t offset = (seed % k + (start + first) % k) % k;  // no overflow for 64-bit seeds
                for (int64_t i = 0; i < n; i++)
                    label[i] = digit >= 0 ? digit : static_cast<int64_t>((offset + static_cast<uint64_t>(i)) % k);
                inputs.push_back(labels.to(device));
            }
            at::Tensor images = loader.run(inputs).at(0).to(at::kCPU, at::kFloat);
            at::Tensor levels = images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(at::kByte).contiguous();
            std::copy_n(levels.data_ptr<uint8_t>(), n * pixels, out.data() + first * pixels);
        }
        write_npy(argv[5], out, {count, image[0], image[1], image[2]});
    } catch (const std::exception &exc) {
        std::cerr << "gankit_sample: error: " << exc.what() << "\n";
        return 2;
    }
    return 0;
}
