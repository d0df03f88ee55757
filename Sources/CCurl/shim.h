// Typed wrappers for libcurl's variadic setopt/getinfo calls, which Swift cannot call directly.
// No logic: each function passes its one argument through with the type libcurl expects.
#ifndef DETOUR_CCURL_SHIM_H
#define DETOUR_CCURL_SHIM_H

#include <curl/curl.h>

typedef size_t (*detour_curl_data_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode detour_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode detour_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode detour_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode detour_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode detour_curl_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode detour_curl_easy_setopt_callback(
    CURL *handle, CURLoption option, detour_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode detour_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode detour_curl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLMcode detour_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

#endif
