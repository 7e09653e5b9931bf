# find_package(tensorlane) for an installed tensorlane (capi/install.sh PREFIX).
# Targets: tensorlane::tensorlane (the shared library) and tensorlane::static.
get_filename_component(_tensorlane_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT TARGET tensorlane::tensorlane)
  add_library(tensorlane::tensorlane SHARED IMPORTED)
  set_target_properties(tensorlane::tensorlane PROPERTIES
    IMPORTED_LOCATION "${_tensorlane_prefix}/lib/libtensorlane.so"
    IMPORTED_NO_SONAME TRUE
    INTERFACE_INCLUDE_DIRECTORIES "${_tensorlane_prefix}/include")
endif()

if(NOT TARGET tensorlane::static)
  find_package(Threads REQUIRED)
  add_library(tensorlane::static STATIC IMPORTED)
  set_target_properties(tensorlane::static PROPERTIES
    IMPORTED_LOCATION "${_tensorlane_prefix}/lib/libtensorlane.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_tensorlane_prefix}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m;rt")
endif()

set(tensorlane_FOUND TRUE)
unset(_tensorlane_prefix)
