(class_declaration name: (name) @name) @definition.class
(interface_declaration name: (name) @name) @definition.class
(trait_declaration name: (name) @name) @definition.class
(enum_declaration name: (name) @name) @definition.class
(function_definition name: (name) @name) @definition.function
(method_declaration name: (name) @name) @definition.method

(class_declaration (base_clause [(name) (qualified_name)] @inherit.base)) @inherit.class
(class_declaration (class_interface_clause [(name) (qualified_name)] @inherit.base)) @inherit.class

(namespace_use_clause [(name) (qualified_name)] @import.module) @import
(require_expression [(string (string_content) @import.module) (encapsed_string (string_content) @import.module)]) @import
(require_once_expression [(string (string_content) @import.module) (encapsed_string (string_content) @import.module)]) @import
(include_expression [(string (string_content) @import.module) (encapsed_string (string_content) @import.module)]) @import
(include_once_expression [(string (string_content) @import.module) (encapsed_string (string_content) @import.module)]) @import

(function_call_expression function: [(name) (qualified_name)] @call.name) @call
(member_call_expression name: (name) @call.name) @call
(scoped_call_expression name: (name) @call.name) @call
(object_creation_expression [(name) (qualified_name)] @call.name) @call
