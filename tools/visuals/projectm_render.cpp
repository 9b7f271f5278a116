// Renders a recording frame-exactly with one projectM (libprojectM 3.x) preset, offscreen.
//
//   projectm_render PRESET.milk PCM_S16_STEREO RATE_HZ FPS WIDTH HEIGHT STEP OUT
//
// PCM_S16_STEREO: raw interleaved signed 16-bit stereo at RATE_HZ. Before frame k the samples
// [k * RATE / FPS, (k + 1) * RATE / FPS) are fed with pcm()->addPCM16Data (at most 512 a call),
// then renderFrame() and glReadPixels. Every STEP-th pixel of every STEP-th row (RGB) goes to
// OUT, one frame after another (not stdout: the library prints there). The clocks libprojectM reads (gettimeofday, time,
// std::chrono::system_clock) are replaced by the frame clock k / FPS, so preset motion does not
// depend on how fast this machine renders. The context: EGL surfaceless (Mesa) with a pbuffer,
// desktop OpenGL 3.3 core; no window system is needed.
// Built by tools/visuals/projectm_render.py.
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GL/gl.h>
#include <sys/time.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include <libprojectM/projectM.hpp>

static double g_frame_s = 0.0;  // the frame clock
static const double EPOCH_S = 1.7e9;

extern "C" int gettimeofday(struct timeval *__restrict tv, void *__restrict) {
    double t = EPOCH_S + g_frame_s;
    tv->tv_sec = (time_t)t;
    tv->tv_usec = (suseconds_t)((t - std::floor(t)) * 1e6);
    return 0;
}

extern "C" time_t time(time_t *out) {
    time_t t = (time_t)(EPOCH_S + g_frame_s);
    if (out) *out = t;
    return t;
}

namespace std { namespace chrono { inline namespace _V2 {
system_clock::time_point system_clock::now() noexcept {
    return time_point(duration((long long)((EPOCH_S + g_frame_s) * 1e9)));
}
}}}

static int fail(const char *what) {
    std::fprintf(stderr, "projectm_render: %s (EGL error 0x%x)\n", what, eglGetError());
    return 2;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        std::fprintf(stderr, "usage: %s PRESET PCM RATE_HZ FPS WIDTH HEIGHT STEP OUT\n", argv[0]);
        return 2;
    }
    const std::string preset = argv[1];
    const int rate = std::atoi(argv[3]), width = std::atoi(argv[5]), height = std::atoi(argv[6]);
    const int step = std::atoi(argv[7]);
    const double fps = std::atof(argv[4]);

    std::FILE *pcm_file = std::fopen(argv[2], "rb");
    if (!pcm_file) { std::perror(argv[2]); return 2; }
    std::vector<short> pcm;
    short buf[8192];
    size_t got;
    while ((got = std::fread(buf, sizeof(short), 8192, pcm_file)) > 0) pcm.insert(pcm.end(), buf, buf + got);
    std::fclose(pcm_file);
    const long frames_total = (long)(pcm.size() / 2);

    auto get_display = (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    EGLDisplay dpy = get_display ? get_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, nullptr)
                                 : eglGetDisplay(EGL_DEFAULT_DISPLAY);
    if (dpy == EGL_NO_DISPLAY || !eglInitialize(dpy, nullptr, nullptr)) return fail("no EGL display");
    const EGLint config_attrs[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8,
                                   EGL_BLUE_SIZE, 8, EGL_ALPHA_SIZE, 8, EGL_DEPTH_SIZE, 24,
                                   EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE};
    EGLConfig config;
    EGLint n_configs = 0;
    if (!eglChooseConfig(dpy, config_attrs, &config, 1, &n_configs) || n_configs < 1) return fail("no EGL config");
    const EGLint surface_attrs[] = {EGL_WIDTH, width, EGL_HEIGHT, height, EGL_NONE};
    EGLSurface surface = eglCreatePbufferSurface(dpy, config, surface_attrs);
    if (surface == EGL_NO_SURFACE) return fail("no pbuffer");
    eglBindAPI(EGL_OPENGL_API);
    const EGLint context_attrs[] = {EGL_CONTEXT_MAJOR_VERSION, 3, EGL_CONTEXT_MINOR_VERSION, 3,
                                    EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL_NONE};
    EGLContext context = eglCreateContext(dpy, config, EGL_NO_CONTEXT, context_attrs);
    if (context == EGL_NO_CONTEXT) return fail("no OpenGL 3.3 core context");
    if (!eglMakeCurrent(dpy, surface, surface, context)) return fail("eglMakeCurrent");

    // A folder holding only this preset: nothing else can be chosen.
    std::FILE *out_file = std::fopen(argv[8], "wb");
    if (!out_file) { std::perror(argv[8]); return 2; }
    const std::string folder = preset.substr(0, preset.find_last_of('/'));
    projectM::Settings settings;
    settings.windowWidth = width;
    settings.windowHeight = height;
    settings.fps = (int)std::lround(fps);
    settings.textureSize = 1024;
    settings.meshX = 32;
    settings.meshY = 24;
    settings.presetURL = folder;
    settings.datadir = "/usr/share/projectM";
    settings.smoothPresetDuration = 0;
    settings.presetDuration = 100000;
    settings.hardcutEnabled = false;
    settings.shuffleEnabled = false;
    settings.beatSensitivity = 1.0f;
    projectM pm(settings, projectM::FLAG_DISABLE_PLAYLIST_LOAD);
    const std::string name = preset.substr(preset.find_last_of('/') + 1);
    pm.addPresetURL(preset, name, RatingList{1, 1});
    pm.selectPreset(pm.getPlaylistSize() - 1, true);
    pm.setPresetLock(true);
    pm.projectM_resetGL(width, height);

    std::vector<unsigned char> rgb((size_t)width * height * 3);
    std::vector<unsigned char> out((size_t)((width + step - 1) / step) * ((height + step - 1) / step) * 3);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    const long n_frames = (long)std::floor(frames_total * fps / rate);
    for (long k = 0; k < n_frames; ++k) {
        long from = std::lround(k * rate / fps), to = std::min(frames_total, std::lround((k + 1) * rate / fps));
        for (long i = from; i < to; i += 512) {
            pm.pcm()->addPCM16Data(&pcm[2 * i], (short)std::min<long>(512, to - i));
        }
        g_frame_s = (k + 1) / fps;
        pm.renderFrame();
        glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, rgb.data());
        size_t o = 0;
        for (int y = 0; y < height; y += step)
            for (int x = 0; x < width; x += step)
                for (int c = 0; c < 3; ++c) out[o++] = rgb[((size_t)y * width + x) * 3 + c];
        if (std::fwrite(out.data(), 1, o, out_file) != o) return 3;
    }
    if (std::fclose(out_file) != 0) return 3;
    eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglTerminate(dpy);
    return 0;
}
