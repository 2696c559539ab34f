/* mscn.cpp — finds and loads libpilot_mscn.so (see mscn.h).  No libtorch here. */
#include "mscn.h"

#include <dlfcn.h>
#include <limits.h>
#include <mutex>
#include <unistd.h>

namespace pilot {
namespace model {

namespace {

struct Runtime {
    MscnCreateFn *create = nullptr;
    MscnLoadFn *load = nullptr;
    std::string error; /* why not, when create is null */
};

std::string exe_dir() {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return "";
    std::string p(buf, static_cast<size_t>(n));
    size_t slash = p.rfind('/');
    return slash == std::string::npos ? "" : p.substr(0, slash);
}

const Runtime &runtime() {
    static Runtime rt;
    static std::once_flag once;
    std::call_once(once, [] {
        /* linked in already (unit tests link the implementation directly) */
        rt.create = reinterpret_cast<MscnCreateFn *>(dlsym(RTLD_DEFAULT, kMscnCreateSymbol));
        rt.load = reinterpret_cast<MscnLoadFn *>(dlsym(RTLD_DEFAULT, kMscnLoadSymbol));
        if (rt.create && rt.load)
            return;
        std::vector<std::string> paths;
        if (const char *env = getenv("PILOTD_MODEL_LIB"); env && *env)
            paths.push_back(env);
        std::string dir = exe_dir();
        if (!dir.empty()) {
            paths.push_back(dir + "/libpilot_mscn.so");
            paths.push_back(dir + "/../lib/pg_pilot/libpilot_mscn.so");
        }
        std::string tried;
        for (const std::string &p : paths) {
            void *h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
            if (!h) {
                const char *e = dlerror();
                tried += (tried.empty() ? "" : "; ") + std::string(e ? e : p.c_str());
                continue;
            }
            rt.create = reinterpret_cast<MscnCreateFn *>(dlsym(h, kMscnCreateSymbol));
            rt.load = reinterpret_cast<MscnLoadFn *>(dlsym(h, kMscnLoadSymbol));
            if (rt.create && rt.load)
                return;
            tried += "; " + p + ": entry points missing";
            rt.create = nullptr;
            rt.load = nullptr;
        }
        rt.error = "the learned model's runtime (libpilot_mscn.so, libtorch) cannot be loaded: " +
                   (tried.empty() ? std::string("no place to look") : tried);
    });
    return rt;
}

} // namespace

bool Mscn::runtime_available(std::string *why) noexcept {
    try {
        const Runtime &rt = runtime();
        if (rt.create)
            return true;
        if (why)
            *why = rt.error;
    } catch (...) {
        if (why)
            *why = "cannot load the learned model's runtime";
    }
    return false;
}

std::unique_ptr<Mscn> Mscn::create(const Dims &dims, uint32_t hidden, uint64_t seed) {
    const Runtime &rt = runtime();
    if (!rt.create)
        throw std::runtime_error(rt.error);
    return std::unique_ptr<Mscn>(rt.create(&dims, hidden, seed));
}

std::unique_ptr<Mscn> Mscn::load(const std::string &bytes, const Dims &dims, uint32_t hidden,
                                 std::string *why) noexcept {
    try {
        const Runtime &rt = runtime();
        if (!rt.load) {
            if (why)
                *why = rt.error;
            return nullptr;
        }
        return std::unique_ptr<Mscn>(rt.load(bytes.data(), bytes.size(), &dims, hidden, why));
    } catch (...) {
        if (why)
            *why = "cannot load the network";
        return nullptr;
    }
}

} // namespace model
} // namespace pilot
