# Wheel builds only (scikit-build-core sets SKBUILD): find the mimalloc of
# PyPI's cmeel-mimalloc, a build requirement in pyproject.toml, whose static
# library python/CMakeLists.txt links into the extension (docs/packaging.md
# says why). cmeel installs its CMake packages under
# <site-packages>/cmeel.prefix, and scikit-build-core puts the build
# environment's site-packages on CMAKE_PREFIX_PATH. Only that mimalloc is
# accepted: a system one (Debian's 2.0.9 or 3.0.1) must not slip into a wheel.
# The later find_package(mimalloc) in CMakeLists.txt reuses what this finds.
set(_cc_cmeel_prefixes)
foreach(_cc_prefix IN LISTS CMAKE_PREFIX_PATH)
  list(APPEND _cc_cmeel_prefixes "${_cc_prefix}/cmeel.prefix")
endforeach()
find_package(mimalloc 3.1 CONFIG REQUIRED PATHS ${_cc_cmeel_prefixes} NO_DEFAULT_PATH)
if(NOT TARGET mimalloc-static)
  message(FATAL_ERROR "mimalloc ${mimalloc_VERSION} at ${mimalloc_DIR} has no mimalloc-static target")
endif()
message(STATUS "wheel build: mimalloc ${mimalloc_VERSION} (static) from ${mimalloc_DIR}")
