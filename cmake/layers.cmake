# mq_add_layer(<layer> SOURCES <files...> LINKS <targets...>)
#   One static library per layer of docs/architecture.md, named moequant_<layer>. It links
#   PUBLIC only the layers below it (and outside libraries), so a call that reaches up a layer
#   fails to link; tests/layering_test.py checks the includes against the same order.
function(mq_add_layer layer)
  cmake_parse_arguments(L "" "" "SOURCES;LINKS" ${ARGN})
  add_library(moequant_${layer} STATIC ${L_SOURCES})
  target_include_directories(moequant_${layer} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)
  target_include_directories(moequant_${layer} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(moequant_${layer} PUBLIC ${L_LINKS})
  target_compile_options(moequant_${layer} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${MOEQUANT_WARNINGS}>)
  set_property(GLOBAL APPEND PROPERTY MOEQUANT_LAYER_TARGETS moequant_${layer})
endfunction()
