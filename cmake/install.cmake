# `cmake --install` rules and the package config, so that a host program finds moequant with
#   find_package(moequant REQUIRED)
#   target_link_libraries(my_trainer PRIVATE moequant::moequant)
# (docs/embedding.md). Included once at the end of the top-level CMakeLists.txt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MOEQUANT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/moequant)

# The static libraries, one per layer: a consumer links them all through moequant.
get_property(mq_install_targets GLOBAL PROPERTY MOEQUANT_LAYER_TARGETS)
if(TARGET moequant)
  list(APPEND mq_install_targets moequant)
endif()
if(TARGET moequant_parallel_torchrun)
  # Linked privately by the static moequant_parallel, so its consumers link it too.
  list(APPEND mq_install_targets moequant_parallel_torchrun)
endif()
install(TARGETS ${mq_install_targets}
        EXPORT moequantTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/moequant
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(EXPORT moequantTargets
        NAMESPACE moequant::
        DESTINATION ${MOEQUANT_INSTALL_CMAKEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/moequantConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/moequantConfig.cmake
                              INSTALL_DESTINATION ${MOEQUANT_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/moequantConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/moequantConfig.cmake
              ${PROJECT_BINARY_DIR}/moequantConfigVersion.cmake
        DESTINATION ${MOEQUANT_INSTALL_CMAKEDIR})
